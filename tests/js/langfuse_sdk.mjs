// Records a trace through the edge with the unmodified Langfuse JS SDK (v5, from npm), which
// exports OTLP JSON to {baseUrl}/api/public/otel/v1/traces.
//
//     node langfuse_sdk.mjs BASE_URL PUBLIC_KEY SECRET_KEY
//
// A span with a generation (model, usage, parameters) and trace-level user, session and tags.
// Prints the trace id as JSON; exits non-zero if the export fails.
import { LangfuseSpanProcessor } from "@langfuse/otel";
import { propagateAttributes, startActiveObservation, startObservation } from "@langfuse/tracing";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const [baseUrl, publicKey, secretKey] = process.argv.slice(2);
const failures = [];
const processor = new LangfuseSpanProcessor({ publicKey, secretKey, baseUrl, exportMode: "immediate" });
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
provider.register();

let traceId;
await startActiveObservation("js-request", async (span) => {
  traceId = span.traceId;
  span.update({ input: { question: "where is A-2?" } });
  await propagateAttributes(
    { userId: "js-user", sessionId: "js-session", tags: ["js-sdk"], traceName: "js-assistant" },
    async () => {
      const generation = startObservation(
        "js-answer",
        { model: "gpt-4.1-mini", modelParameters: { temperature: 0.5 }, input: [{ role: "user", content: "where is A-2?" }] },
        { asType: "generation" },
      );
      generation.update({ output: { role: "assistant", content: "Delivered." }, usageDetails: { input: 500, output: 50 } });
      generation.end();
    },
  );
  span.update({ output: { answer: "Delivered." } });
});

try {
  await processor.forceFlush();
  await provider.shutdown();
} catch (error) {
  failures.push(String(error));
}
console.log(JSON.stringify({ traceId }));
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
