// Loopback echo backend for bench/http_route.py: answers every request with the
// bytes it received (200, application/json). The SAME process serves all three
// contenders (direct, hub, Node-RED), so they differ only in what sits in front.
// No dependencies: Node's own http module, keep-alive on.
//
//   node bench/nodered/echo.js PORT      (PORT 0: any free one)
// Prints "listening <port>" on stdout once it accepts connections.
// GET /count answers the number of echoed requests (the smoke test checks that
// every contender really called the backend).
"use strict";
const http = require("http");

const port = Number(process.argv[2] || process.env.ECHO_PORT || 0);
let echoed = 0;

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/count") {
    const body = Buffer.from(JSON.stringify({ echoed }));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
    res.end(body);
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    echoed += 1;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
