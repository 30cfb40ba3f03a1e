use super::*;

fn tags(pairs: &[(&str, &str)]) -> UserTags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ctx<'a>(t: &'a UserTags, claims: Option<&'a serde_json::Value>) -> RenderContext<'a> {
    RenderContext { name: "d1", account: "FLEET", tags: t, claims, any: None }
}

#[test]
fn entries_are_checked_when_written() {
    for ok in [
        "devices.{{name}}.>",
        "{{account}}.{{name}}",
        "site.{{tag:site}}.*",
        "org.{{claim:org.team}}.>",
        "dev-{{name}}.x",
        "plain.subject.>",
    ] {
        check_entry(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    check_entry("cmd.{{name}}.> workers-{{tag:site}}", true).unwrap();
    assert!(matches!(check_entry("a.{{nam}}", false), Err(TemplateError::Unknown { .. })));
    assert!(matches!(check_entry("a.{{tag:}}", false), Err(TemplateError::Unknown { .. })));
    assert!(matches!(check_entry("a.{{tag:a.b}}", false), Err(TemplateError::Unknown { .. })));
    assert!(matches!(check_entry("a.{{claim:a..b}}", false), Err(TemplateError::Unknown { .. })));
    assert!(matches!(check_entry("a.{{name", false), Err(TemplateError::Unbalanced(_))));
    assert!(matches!(check_entry("a.{{name}}>", false), Err(TemplateError::Placement(_))));
    assert!(matches!(check_entry("a.*{{name}}", false), Err(TemplateError::Placement(_))));
    assert!(matches!(check_entry("{{name}} q", false), Err(TemplateError::Placement(_))));
}

#[test]
fn placeholders_render_to_the_users_values() {
    let t = tags(&[("site", "berlin")]);
    let claims = serde_json::json!({"org": {"team": "blue"}, "n": 7});
    let c = ctx(&t, Some(&claims));
    assert_eq!(render("devices.{{name}}.>", &c).unwrap(), "devices.d1.>");
    assert_eq!(render("{{account}}.{{tag:site}}.x", &c).unwrap(), "FLEET.berlin.x");
    assert_eq!(render("org.{{claim:org.team}}", &c).unwrap(), "org.blue");
    assert_eq!(render("dev-{{name}}-x.y", &c).unwrap(), "dev-d1-x.y");
    assert_eq!(render("no.placeholder", &c).unwrap(), "no.placeholder");
}

#[test]
fn values_that_are_not_one_token_are_refused() {
    for bad in ["x.>", "*", ">", "a b", "", "a\u{7}", "a.b", "\t"] {
        let t = tags(&[("site", bad)]);
        let err = render("site.{{tag:site}}.>", &ctx(&t, None)).unwrap_err();
        assert!(matches!(err, RenderError::NotAToken { .. }), "{bad:?}: {err}");
    }
    let claims = serde_json::json!({"sub": "*", "n": 7});
    let t = UserTags::new();
    let c = ctx(&t, Some(&claims));
    assert!(matches!(render("u.{{claim:sub}}", &c), Err(RenderError::NotAToken { .. })));
    assert!(matches!(render("u.{{claim:n}}", &c), Err(RenderError::MissingClaim(_))));
    assert!(matches!(render("u.{{claim:none}}", &c), Err(RenderError::MissingClaim(_))));
    assert!(matches!(render("u.{{claim:sub}}", &ctx(&t, None)), Err(RenderError::MissingClaim(_))));
    assert!(matches!(render("u.{{tag:site}}", &c), Err(RenderError::MissingTag(k)) if k == "site"));
}

#[test]
fn tags_are_validated() {
    check_tags(&tags(&[("site", "x.>"), ("team_1", "blue")])).unwrap();
    assert!(matches!(check_tags(&tags(&[("bad key", "v")])), Err(ModelError::TagKey(_))));
    assert!(matches!(check_tags(&tags(&[("k", "")])), Err(ModelError::TagValue(_))));
    assert!(matches!(check_tags(&tags(&[("k", "a\nb")])), Err(ModelError::TagValue(_))));
    let long = "v".repeat(TAG_VALUE_MAX_LEN + 1);
    assert!(matches!(check_tags(&tags(&[("k", &long)])), Err(ModelError::TagValue(_))));
    let many: UserTags = (0..=MAX_TAGS).map(|i| (format!("k{i}"), "v".to_string())).collect();
    assert!(matches!(check_tags(&many), Err(ModelError::TooManyTags(_))));
}

#[test]
fn a_tag_patch_removes_then_sets() {
    let mut t = tags(&[("a", "1"), ("b", "2")]);
    let p = TagPatch { set: tags(&[("b", "3"), ("c", "4")]), unset: vec!["a".into()] };
    p.apply(&mut t);
    assert_eq!(t, tags(&[("b", "3"), ("c", "4")]));
}
