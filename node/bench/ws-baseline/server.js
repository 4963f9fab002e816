// The baseline of `lyceum load --baseline`: a plain `ws` broadcast server.
// Every text message a client sends goes to every other open client, as is:
// no protocol, no auth, no persistence, no audience filtering. Prints
// {"port": N, "pid": P} once listening (port 0 picks a free one).
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
wss.on('listening', () => {
  console.log(JSON.stringify({ port: wss.address().port, pid: process.pid }));
});
wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client !== socket && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});
process.on('SIGTERM', () => wss.close(() => process.exit(0)));
