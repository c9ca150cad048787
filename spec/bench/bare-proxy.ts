// A bare node:http pass-through proxy: the floor for "one more Node hop" on this machine, so the
// streaming table can tell foreman's own cost from what any Node proxy pays. No queue, no
// re-chunking, no auth, no logs: upstream bytes are piped as they come. Runs under launch.ts.

import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);

function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/** `bare-proxy --listen host:port --upstream http://host:port`; returns when SIGTERM/SIGINT closed it. */
export async function runBareProxy(argv: string[], stderr: NodeJS.WritableStream): Promise<number> {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i === -1 ? undefined : argv[i + 1];
  };
  const [host, port] = (flag('--listen') ?? '127.0.0.1:0').split(':');
  const upstream = new URL(flag('--upstream') ?? 'http://127.0.0.1:11434');
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

  const server = createServer({ noDelay: true }, (req, res) => {
    const headers = endToEnd(req.headers);
    headers.host = upstream.host;
    const up = request({ agent, host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, endToEnd(ur.headers));
      ur.pipe(res);
    });
    up.once('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: err.message }));
    });
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(port), host, () => resolve());
  });
  stderr.write(`bare proxy listening on http://${host}:${(server.address() as AddressInfo).port}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  agent.destroy();
  return 0;
}
