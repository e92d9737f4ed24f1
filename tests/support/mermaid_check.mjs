// Parse Mermaid diagrams with the real Mermaid parser, many per process.
//
// Reads one JSON array of diagram texts per line on stdin and answers each with one
// line: a JSON array holding, per diagram, null (it parses) or the parser's message.
// Mermaid's sanitiser (DOMPurify) needs a DOM: jsdom provides one.
import { createInterface } from "node:readline";
import { JSDOM } from "jsdom";

const { window } = new JSDOM("");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

async function check(text) {
  try {
    await mermaid.parse(text);
    return null;
  } catch (error) {
    return String(error?.message ?? error);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
for await (const line of lines) {
  if (!line.trim()) continue;
  const diagrams = JSON.parse(line);
  const results = [];
  for (const text of diagrams) results.push(await check(text));
  process.stdout.write(JSON.stringify(results) + "\n");
}
