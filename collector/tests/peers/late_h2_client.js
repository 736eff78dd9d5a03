// h2c client for the late-join test (node `http2`, one session).
//
//   node late_h2_client.js PORT FIRST_PATH LATER_PATH...
//
// Opens a session, GETs FIRST_PATH, prints its socket's addresses as
// {"local", "remote"}, waits for a line on stdin (the test starts sniff
// meanwhile), then GETs each LATER_PATH in turn on the same session. One
// JSON line per request: what this client did (fixtures' format), plus the
// header fields it sent and received, names lowercased.
'use strict';
const http2 = require('http2');

const [port, ...paths] = process.argv.slice(2);
const session = http2.connect(`http://127.0.0.1:${port}`);

function get(path) {
  return new Promise((resolve, reject) => {
    const sent = { ':method': 'GET', ':path': path, 'x-test-token': `token-for-${path}` };
    const req = session.request(sent, { endStream: true });
    let status = null;
    let received = {};
    let size = 0;
    req.on('response', (h) => { status = h[':status']; received = h; });
    req.on('data', (c) => { size += c.length; });
    req.on('end', () => resolve({
      method: 'GET',
      path,
      status,
      request_body: 0,
      response_body: size,
      stream_id: req.id,
      client_port: session.socket.localPort,
      sent: Object.entries(sent).map(([k, v]) => [k, String(v)]),
      received: Object.entries(received).map(([k, v]) => [k, String(v)]),
    }));
    req.on('error', reject);
  });
}

session.on('connect', async () => {
  try {
    console.log(JSON.stringify(await get(paths[0])));
    const s = session.socket;
    console.log(JSON.stringify({
      local: `${s.localAddress}:${s.localPort}`,
      remote: `${s.remoteAddress}:${s.remotePort}`,
    }));
    await new Promise((resolve) => process.stdin.once('data', resolve));
    for (const p of paths.slice(1)) console.log(JSON.stringify(await get(p)));
  } finally {
    session.close();
    process.stdin.destroy();
  }
});
