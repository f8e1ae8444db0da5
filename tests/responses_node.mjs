// Drives a running claude-pool daemon's Responses API with the official
// `openai` TypeScript SDK and the Vercel AI SDK's default OpenAI provider
// (`ai` + `@ai-sdk/openai`, which speaks the Responses API).
//
// Usage: node tests/responses_node.mjs http://127.0.0.1:PORT NODE_MODULES_DIR
//
// Run by tests/integration/real_cli/responses_e2e.rs against a daemon using the real CLI and the
// fake upstream (tests/common/upstream.rs), whose `[[marker]]`s script the
// replies. Every check runs; each prints `ok` or `FAIL` with the reason, and
// the exit status is 1 if any failed.

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [base, modules] = process.argv.slice(2);
const require = createRequire(join(modules, "resolve.js"));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);

const { default: OpenAI } = await load("openai");
const ai = await load("ai");
const { createOpenAI } = await load("@ai-sdk/openai");

const MODEL = "claude-haiku-4-5";

function check(cond, what) {
  if (!cond) throw new Error(what);
}

const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
const provider = createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" });

async function tsCreateAndStream() {
  const r = await client.responses.create({ model: MODEL, input: "ts hello" });
  check(r.status === "completed", `status: ${r.status}`);
  check(r.output_text === "Hello! You said: ts hello", `text: ${r.output_text}`);
  const stream = client.responses.stream({ model: MODEL, input: "count [[words:4]]" });
  let text = "";
  const kinds = [];
  for await (const event of stream) {
    kinds.push(event.type);
    if (event.type === "response.output_text.delta") text += event.delta;
  }
  const final = await stream.finalResponse();
  check(text === "w0 w1 w2 w3 ", `streamed: ${JSON.stringify(text)}`);
  check(kinds[0] === "response.created" && kinds.at(-1) === "response.completed", `events: ${kinds}`);
  check(final.output_text === text, `final: ${final.output_text}`);
}

async function tsToolRound() {
  const tools = [{
    type: "function", name: "get_weather", strict: false,
    parameters: { type: "object", properties: { city: { type: "string" } } },
  }];
  const r = await client.responses.create({ model: MODEL, input: "weather [[tool:get_weather]]", tools });
  const call = r.output.find((i) => i.type === "function_call");
  check(call && call.name === "get_weather", `output: ${JSON.stringify(r.output)}`);
  const done = await client.responses.create({
    model: MODEL, tools, previous_response_id: r.id,
    input: [{ type: "function_call_output", call_id: call.call_id, output: "windy" }],
  });
  check(done.output_text === "Tool results: windy", `text: ${done.output_text}`);
}

const weatherTool = () => ai.tool({
  description: "Current weather of a city",
  inputSchema: ai.jsonSchema({ type: "object", properties: { query: { type: "string" } } }),
  execute: async ({ query }) => `sunny (${query})`,
});

async function vercelGenerateText() {
  const result = await ai.generateText({
    model: provider(MODEL),
    prompt: "weather? [[tool:get_weather]]",
    tools: { get_weather: weatherTool() },
    stopWhen: ai.stepCountIs(3),
  });
  check(result.steps.length === 2, `steps: ${result.steps.length}`);
  check(result.steps[0].toolCalls[0]?.toolName === "get_weather", `calls: ${JSON.stringify(result.steps[0].toolCalls)}`);
  check(result.text.startsWith("Tool results: sunny"), `text: ${result.text}`);
}

async function vercelStreamText() {
  const result = ai.streamText({
    model: provider(MODEL),
    prompt: "weather? [[tool:get_weather]]",
    tools: { get_weather: weatherTool() },
    stopWhen: ai.stepCountIs(3),
  });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  const steps = await result.steps;
  check(steps.length === 2, `steps: ${steps.length}`);
  check(text.endsWith("Tool results: sunny (get_weather-input)"), `text: ${text}`);
}

let failed = 0;
for (const fn of [tsCreateAndStream, tsToolRound, vercelGenerateText, vercelStreamText]) {
  try {
    await fn();
    console.log(`ok   ${fn.name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${fn.name}\n${e.stack}`);
  }
}
process.exit(failed ? 1 : 0);
