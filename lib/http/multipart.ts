// Just enough multipart/form-data (RFC 7578) for /v1/audio/transcriptions:
// read a small text field (the model, to group the job) and replace one (an
// alias). The file part is never copied or decoded; the body goes upstream as sent.

import { badRequest } from '../errors.js';

interface Part {
  name: string | null;
  /** byte range of the part's body inside the whole request body */
  start: number;
  end: number;
}

export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^multipart\/form-data\b/i.test(contentType.trim())) return null;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

function partsOf(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const afterDelimiter = at + delimiter.length;
    if (body[afterDelimiter] === 0x2d && body[afterDelimiter + 1] === 0x2d) break; // the closing `--boundary--`
    const headersEnd = body.indexOf('\r\n\r\n', afterDelimiter);
    if (headersEnd === -1) break;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd + 4);
    if (next === -1) break;
    const headers = body.toString('latin1', afterDelimiter, headersEnd);
    const name = /content-disposition:[^\r\n]*?\bname="([^"]*)"/i.exec(headers)?.[1] ?? null;
    parts.push({ name, start: headersEnd + 4, end: next });
    at = next + 2;
  }
  return parts;
}

function requireBoundary(contentType: string | undefined): string {
  const boundary = boundaryOf(contentType);
  if (!boundary) throw badRequest('failed to parse multipart form: request Content-Type isn\'t multipart/form-data');
  return boundary;
}

/** A text field's value, or undefined when the form has no such field. */
export function multipartField(body: Buffer, contentType: string | undefined, name: string): string | undefined {
  const part = partsOf(body, requireBoundary(contentType)).find((p) => p.name === name);
  return part ? body.toString('utf8', part.start, part.end) : undefined;
}

/** The same form with one text field's value replaced; the other bytes are untouched. */
export function replaceMultipartField(body: Buffer, contentType: string | undefined, name: string, value: string): Buffer {
  const part = partsOf(body, requireBoundary(contentType)).find((p) => p.name === name);
  if (!part) return body;
  return Buffer.concat([body.subarray(0, part.start), Buffer.from(value), body.subarray(part.end)]);
}
