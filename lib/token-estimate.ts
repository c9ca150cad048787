// Ollama's input-token estimate for an Anthropic Messages request (bytes / 4 of
// the system prompt, roles, text, thinking, tool blocks and tool schemas), the
// number its message_start carries. foreman answers /v1/messages/count_tokens
// with it and the simulator prints it; pure, no I/O.

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Bytes of Go's json.Marshal output: JSON.stringify plus Go's escaping of < > & U+2028 U+2029. */
function goJsonBytes(value: unknown): number {
  const text = JSON.stringify(value) ?? 'null';
  let extra = 0;
  for (const c of text.matchAll(/[<>&\u2028\u2029]/g)) extra += c[0] === '<' || c[0] === '>' || c[0] === '&' ? 5 : 3;
  return Buffer.byteLength(text) + extra;
}

/** A block as Go's ContentBlock struct re-marshals it: known fields only, in its field order, empty ones left out. */
function marshalledBlock(block: Json): Json {
  const out: Json = { type: typeof block.type === 'string' ? block.type : '' };
  if (typeof block.text === 'string') out.text = block.text;
  if (Array.isArray(block.citations) && block.citations.length > 0) out.citations = block.citations;
  if (isObject(block.source)) out.source = block.source;
  if (typeof block.id === 'string' && block.id) out.id = block.id;
  if (typeof block.name === 'string' && block.name) out.name = block.name;
  if (block.input !== undefined && block.input !== null) out.input = block.input;
  if (typeof block.tool_use_id === 'string' && block.tool_use_id) out.tool_use_id = block.tool_use_id;
  if (block.content !== undefined && block.content !== null) out.content = block.content;
  if (block.is_error === true) out.is_error = true;
  if (typeof block.thinking === 'string') out.thinking = block.thinking;
  if (typeof block.signature === 'string' && block.signature) out.signature = block.signature;
  return out;
}

function countBlock(block: unknown): number {
  if (!isObject(block)) return 0;
  let total = 0;
  if (typeof block.text === 'string') total += Buffer.byteLength(block.text);
  if (typeof block.thinking === 'string') total += Buffer.byteLength(block.thinking);
  if (block.type === 'tool_use' || block.type === 'tool_result') total += goJsonBytes(marshalledBlock(block));
  return total;
}

/** A message's content is a string (one text block) or an array of blocks. */
function countMessageContent(content: unknown): number {
  if (typeof content === 'string') return Buffer.byteLength(content);
  if (!Array.isArray(content)) return 0;
  let total = 0;
  for (const block of content) total += countBlock(block);
  return total;
}

function countSystem(system: unknown): number {
  if (system === undefined || system === null) return 0;
  if (typeof system === 'string') return Buffer.byteLength(system);
  if (Array.isArray(system)) {
    let total = 0;
    for (const block of system) total += countBlock(block);
    return total;
  }
  return goJsonBytes(system);
}

/** Tokens, about four bytes each; at least 1 when there is any message or system prompt. */
export function estimateInputTokens(body: Json): number {
  let total = countSystem(body.system);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const m of messages) {
    if (!isObject(m)) continue;
    if (typeof m.role === 'string') total += Buffer.byteLength(m.role);
    total += countMessageContent(m.content);
  }
  for (const tool of Array.isArray(body.tools) ? body.tools : []) {
    if (!isObject(tool)) continue;
    if (typeof tool.name === 'string') total += Buffer.byteLength(tool.name);
    if (typeof tool.description === 'string') total += Buffer.byteLength(tool.description);
    // Go keeps input_schema as the raw bytes sent; compact JSON is what clients send.
    if (tool.input_schema !== undefined && tool.input_schema !== null) total += Buffer.byteLength(JSON.stringify(tool.input_schema));
  }
  const tokens = Math.floor(total / 4);
  return tokens === 0 && (messages.length > 0 || (body.system !== undefined && body.system !== null)) ? 1 : tokens;
}
