// What the conformance cases cannot see from the client's side, checked against the same live
// server: leaving a stream's loop or aborting its signal stops the call on the server (its
// ListModels counts the call as CANCELLED), and the receive limit can be raised and lowered.
// Skipped unless INFERD_CONFORMANCE is set (conformance.sh runs it after the cases).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Cancelled, Client, ResourceExhausted } from "../src/index.js";

const path = process.env["INFERD_CONFORMANCE"];
const connection = path ? (JSON.parse(readFileSync(path, "utf8")) as { plain: string }) : undefined;

async function cancelled(client: Client, model: string): Promise<number> {
  const info = (await client.models()).find((m) => m.name === model);
  return info?.requests["CANCELLED"] ?? 0;
}

/** Polls until the server has counted more cancelled calls of `model` than `before` (the
 * count is updated when the server's handler ends); fails after 10 s. */
async function untilCancelled(client: Client, model: string, before: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await cancelled(client, model)) <= before) {
    assert.ok(Date.now() < deadline, `the server never counted the ${model} stream as CANCELLED`);
    await sleep(20);
  }
}

describe("live", { skip: connection ? false : "INFERD_CONFORMANCE not set" }, () => {
  test("break in for await cancels the stream on the server", async () => {
    const client = new Client(connection!.plain, { timeoutMs: 30_000 });
    try {
      const before = await cancelled(client, "echo");
      const started = Date.now();
      const seen: unknown[] = [];
      for await (const chunk of client.stream("echo", "a b c d e f g h i j", { parameters: { delay_ms: 200 } })) {
        seen.push(chunk.output);
        break;
      }
      assert.deepEqual(seen, ["a"]);
      await untilCancelled(client, "echo", before);
      assert.ok(Date.now() - started < 2000, "the stream ran on after the break"); // all ten chunks take 2 s
    } finally {
      client.close();
    }
  });

  test("aborting the signal cancels the stream and throws Cancelled", async () => {
    const client = new Client(connection!.plain, { timeoutMs: 30_000 });
    try {
      const before = await cancelled(client, "echo");
      const controller = new AbortController();
      const seen: unknown[] = [];
      await assert.rejects(async () => {
        for await (const chunk of client.stream("echo", "a b c d e f g h i j", { parameters: { delay_ms: 200 }, signal: controller.signal })) {
          seen.push(chunk.output);
          controller.abort();
        }
      }, Cancelled);
      assert.deepEqual(seen, ["a"]);
      await untilCancelled(client, "echo", before);
    } finally {
      client.close();
    }
  });

  test("the receive limit: 64 MiB by default, lower when asked", async () => {
    const parameters = { bytes: 6 * 1024 * 1024 };
    const client = new Client(connection!.plain);
    const small = new Client(connection!.plain, { maxReceiveBytes: 1024 * 1024 });
    try {
      const result = await client.infer("large", {}, { parameters });
      assert.equal((result.output as string).length, parameters.bytes);
      await assert.rejects(small.infer("large", {}, { parameters }), (error: unknown) => {
        assert.ok(error instanceof ResourceExhausted);
        assert.match(error.message, /larger than configured readMaxBytes 1048576/);
        return true;
      });
    } finally {
      client.close();
      small.close();
    }
  });
});
