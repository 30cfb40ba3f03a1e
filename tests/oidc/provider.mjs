// The OpenID Connect provider of pbn's OIDC login tests: a real `oidc-provider` issuing JWT
// access tokens by the client-credentials grant. Installed with its package by
// scripts/install-oidc-provider.sh; started by tests/support/oidc.rs.
//
// Usage: node provider.mjs PORT KEY_PREFIX
// Keys are generated at start (RS256, ES256, EdDSA), their ids prefixed with KEY_PREFIX, so a
// restart with another prefix is a key rotation. Clients (secret: "secret-" + id) carry the
// claims of a user: alice (groups dev, staff), bob (Keycloak-style realm_access.roles ops),
// carol (groups nobody). Resources: urn:pbn:nats (RS256, audience urn:pbn:nats),
// urn:pbn:nats:es256, urn:pbn:nats:eddsa (same audience, other algorithms), urn:pbn:nats:short
// (RS256, lives 1 s) and urn:pbn:other (audience urn:pbn:other).
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const prefix = process.argv[3] || "k1";
const issuer = `http://127.0.0.1:${port}`;

function jwk(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), kid, alg, use: "sig" };
}

const keys = [
  jwk("rsa", { modulusLength: 2048 }, `${prefix}-rs`, "RS256"),
  jwk("ec", { namedCurve: "P-256" }, `${prefix}-es`, "ES256"),
  jwk("ed25519", {}, `${prefix}-ed`, "EdDSA"),
];

const users = {
  alice: { preferred_username: "alice", email: "alice@example.com", groups: ["dev", "staff"] },
  bob: { preferred_username: "bob", realm_access: { roles: ["ops", "offline_access"] } },
  carol: { preferred_username: "carol", groups: ["nobody"] },
};

const resources = {
  "urn:pbn:nats": { audience: "urn:pbn:nats", alg: "RS256", ttl: 300 },
  "urn:pbn:nats:es256": { audience: "urn:pbn:nats", alg: "ES256", ttl: 300 },
  "urn:pbn:nats:eddsa": { audience: "urn:pbn:nats", alg: "EdDSA", ttl: 300 },
  "urn:pbn:nats:short": { audience: "urn:pbn:nats", alg: "RS256", ttl: 1 },
  "urn:pbn:other": { audience: "urn:pbn:other", alg: "RS256", ttl: 300 },
};

const provider = new Provider(issuer, {
  jwks: { keys },
  clients: Object.keys(users).map((id) => ({
    client_id: id,
    client_secret: `secret-${id}`,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: "client_secret_post",
  })),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:pbn:nats",
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        const r = resources[indicator];
        if (!r) throw new Provider.errors.InvalidTarget();
        return {
          scope: "nats",
          audience: r.audience,
          accessTokenTTL: r.ttl,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: r.alg } },
        };
      },
    },
  },
  extraTokenClaims: (ctx, token) => users[token.clientId] || {},
});

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer} with keys ${keys.map((k) => k.kid).join(",")}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
