// A node:test reporter that writes one JSON line per finished test (and per file that failed to
// load): what scripts/check-test-run.ts needs to prove a run. Plain .mjs: node loads reporters
// before tsx's hooks are in place.

export default async function* testEvents(source) {
  for await (const event of source) {
    const { data } = event;
    // A test's diagnostics follow its result, at its nesting; the run's own summary has no file.
    if (event.type === "test:diagnostic" && data.file !== undefined) {
      yield `${JSON.stringify({ diagnostic: data.message, nesting: data.nesting })}\n`;
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const error = data.details?.error;
    yield `${JSON.stringify({
      result: event.type === "test:pass" ? "pass" : "fail",
      name: data.name,
      file: data.file,
      nesting: data.nesting,
      suite: data.details?.type === "suite",
      skip: data.skip,
      todo: data.todo,
      error: error === undefined ? undefined : String(error.cause?.message ?? error.message).slice(0, 300),
    })}\n`;
  }
}
