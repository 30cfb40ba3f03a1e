// Logs in with nats.js (v2) using connection options {servers, user, pass} — nats.js ignores
// credentials in the URL — then answers one request on SUBJECT and makes it, printing
// `reply: <payload>`. Usage: node natsjs_request_reply.js SERVER USER SUBJECT (password on stdin).
// NODE_PATH must hold the `nats` package (scripts/install-node-clients.sh).
const { connect, StringCodec } = require("nats");

async function main() {
  const [server, user, subject] = process.argv.slice(2);
  const pass = require("fs").readFileSync(0, "utf8").split("\n")[0];
  const nc = await connect({ servers: server, user, pass, reconnect: false });
  const sc = StringCodec();
  const sub = nc.subscribe(subject, { max: 1 });
  (async () => {
    for await (const m of sub) {
      m.respond(sc.encode("hello " + sc.decode(m.data)));
    }
  })();
  const reply = await nc.request(subject, sc.encode(user), { timeout: 5000 });
  console.log("reply: " + sc.decode(reply.data));
  await nc.close();
}

main().catch((err) => {
  console.error("error: " + err.message);
  process.exit(1);
});
