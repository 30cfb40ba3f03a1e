//! The results table and memory readings.

use std::fmt::Write as _;
use std::time::Duration;

use crate::storm::{Latency, Storm};

/// One line of the storm table.
pub struct StormRow {
    /// What was measured.
    pub scenario: String,
    /// Clients that tried.
    pub clients: usize,
    /// Clients that failed.
    pub failed: usize,
    /// Wall time.
    pub wall: Duration,
    /// Connects per second.
    pub rate: f64,
    /// Connect latency.
    pub latency: Latency,
    /// Remarks (first error, parameters).
    pub note: String,
}

/// Everything measured, in order, and whether anything failed that should not have.
#[derive(Default)]
pub struct Report {
    storms: Vec<StormRow>,
    facts: Vec<(String, String, String)>,
    /// Unexpected failures; any makes the benchmark exit non-zero.
    pub failures: Vec<String>,
}

impl Report {
    /// Records a storm; its failed clients count as unexpected failures.
    pub fn storm(&mut self, scenario: &str, s: &Storm, note: &str) {
        let mut note = note.to_string();
        if let Some(e) = &s.first_error {
            self.failures.push(format!("{scenario}: {} of {} failed ({e})", s.failed, s.attempted));
            let sep = if note.is_empty() { "" } else { "; " };
            note = format!("{note}{sep}first error: {e}");
        }
        if let Some((rss, hwm)) = memory_mib(None) {
            eprintln!("  {scenario}: done; this process RSS {rss:.0} MiB, peak {hwm:.0} MiB");
        }
        self.storms.push(StormRow {
            scenario: scenario.into(),
            clients: s.attempted,
            failed: s.failed,
            wall: s.wall,
            rate: s.rate(),
            latency: s.latency,
            note,
        });
    }

    /// Records a measured fact (a time, a ratio, a memory figure, a skipped scenario).
    pub fn fact(&mut self, what: &str, value: impl Into<String>, note: impl Into<String>) {
        let (value, note) = (value.into(), note.into());
        eprintln!("  {what}: {value} {note}");
        self.facts.push((what.into(), value, note));
    }

    /// The connects/s of the storm named `scenario`, if it ran.
    pub fn rate_of(&self, scenario: &str) -> Option<f64> {
        self.storms.iter().find(|r| r.scenario == scenario).map(|r| r.rate)
    }

    /// Both tables as Markdown.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        let _ = writeln!(
            s,
            "| scenario | clients | failed | wall s | connects/s | p50 ms | p99 ms | max ms | note |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        for r in &self.storms {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |",
                r.scenario,
                r.clients,
                r.failed,
                r.wall.as_secs_f64(),
                r.rate,
                ms(r.latency.p50),
                ms(r.latency.p99),
                ms(r.latency.max),
                r.note
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "| measurement | value | note |");
        let _ = writeln!(s, "| --- | ---: | --- |");
        for (what, value, note) in &self.facts {
            let _ = writeln!(s, "| {what} | {value} | {note} |");
        }
        s
    }
}

/// `VmRSS` and `VmHWM` (peak RSS) of process `pid` (`None` = this process), in MiB.
pub fn memory_mib(pid: Option<u32>) -> Option<(f64, f64)> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A duration in seconds with millisecond precision, for the facts table.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
