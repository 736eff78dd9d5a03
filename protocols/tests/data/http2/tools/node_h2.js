// Node's http2 server and client: a 64 KiB header table both ways, large
// frames (SETTINGS_MAX_FRAME_SIZE 2^24-1), many concurrent streams.
//   node node_h2.js server PORT | node node_h2.js client PORT
const http2 = require('http2');
const [mode, port] = [process.argv[2], Number(process.argv[3])];
const settings = { headerTableSize: 65536, maxFrameSize: 16777215 };
if (mode === 'server') {
  const srv = http2.createServer({ settings });
  srv.on('stream', (stream, headers) => {
    const path = headers[':path'];
    if (path === '/large') {
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
      stream.end(Buffer.alloc(300000, 7));
      return;
    }
    let n = 0;
    stream.on('data', (d) => { n += d.length; });
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'x-path': path, 'x-received': String(n),
        'x-filler': 'f'.repeat(200 + (path.length * 37) % 300) });
      stream.end('node says ' + path);
    });
  });
  srv.listen(port, '127.0.0.1');
} else {
  const c = http2.connect(`http://127.0.0.1:${port}`, { settings });
  let pending = 0;
  const done = () => { if (--pending === 0) c.close(); };
  const get = (path, body) => {
    pending++;
    const req = c.request({ ':path': path, ':method': body ? 'POST' : 'GET',
      'x-client-filler': 'c'.repeat(100 + (path.length * 53) % 400) });
    req.on('data', () => {});
    req.on('end', done);
    if (body) req.end(body); else req.end();
  };
  get('/large');
  for (let i = 0; i < 40; i++) get('/item/' + i, i % 3 === 0 ? 'b'.repeat(i * 100) : null);
}
