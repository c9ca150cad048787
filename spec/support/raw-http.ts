// A raw HTTP/1.1 client over node:net that keeps the chunked-encoding frames
// apart, so tests can check that each write foreman made is one whole line.

import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** body frames as sent (chunked encoding), or the whole body for a length-delimited answer */
  chunks: Buffer[];
  body: Buffer;
}

export function rawRequest(baseUrl: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  const head = [
    `${options.method ?? 'POST'} ${options.path} HTTP/1.1`,
    `host: ${url.host}`,
    'connection: close',
    ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    ...(body ? [`content-length: ${body.length}`] : []),
    '',
    '',
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    socket.on('data', (d) => received.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(parse(Buffer.concat(received)));
      } catch (err) {
        reject(err);
      }
    });
    socket.write(head);
    if (body) socket.write(body);
  });
}

function parse(all: Buffer): RawResponse {
  const headEnd = all.indexOf('\r\n\r\n');
  if (headEnd === -1) throw new Error('no HTTP head received');
  const lines = all.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = all.subarray(headEnd + 4);
  if (headers['transfer-encoding'] !== 'chunked') return { status, headers, chunks: [rest], body: rest };
  const chunks: Buffer[] = [];
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    if (size === 0) break;
    chunks.push(rest.subarray(eol + 2, eol + 2 + size));
    rest = rest.subarray(eol + 2 + size + 2);
  }
  return { status, headers, chunks, body: Buffer.concat(chunks) };
}
