// Lightport from the official OpenAI Node SDK: non-stream, stream and tool calling.
//
//   npm install openai
//   ANTHROPIC_API_KEY=... cargo run --release -- serve &
//   node examples/clients/openai_sdk.mjs anthropic/claude-sonnet-4-6
//
// LIGHTPORT_URL (default http://127.0.0.1:8080/v1) and LIGHTPORT_KEY (a gateway key, when the
// gateway has keys) say where and as whom. tests/clients.rs runs it against a mock provider.
import OpenAI from "openai";

const model = process.argv[2] ?? "anthropic/claude-sonnet-4-6";
const client = new OpenAI({
  baseURL: process.env.LIGHTPORT_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.LIGHTPORT_KEY ?? "unused-when-the-gateway-has-keys",
});

const reply = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hello in five words." }],
});
console.log("non-stream:", reply.choices[0].message.content, JSON.stringify(reply.usage));

let streamed = "";
const stream = await client.chat.completions.create({
  model,
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Count from 1 to 5." }],
});
for await (const chunk of stream) {
  if (chunk.choices.length > 0) streamed += chunk.choices[0].delta.content ?? "";
  else if (chunk.usage) console.log("usage:", JSON.stringify(chunk.usage));
}
console.log("stream:", streamed);

const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const asked = await client.chat.completions.create({ model, messages, tools });
const call = asked.choices[0].message.tool_calls[0];
console.log("tool call:", call.function.name, call.function.arguments);
messages.push(asked.choices[0].message, { role: "tool", tool_call_id: call.id, content: "18C and sunny" });
const final = await client.chat.completions.create({ model, messages, tools });
console.log("final:", final.choices[0].message.content);
