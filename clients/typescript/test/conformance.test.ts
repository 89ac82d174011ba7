// The TypeScript runner of clients/conformance/cases.json: every case, in order, through
// @inferd/client as a user would call it, checked against its `expect` as
// tests/conformance_runner.py checks it; the report goes to $INFERD_CONFORMANCE_REPORT.
// Skipped unless INFERD_CONFORMANCE, INFERD_CONFORMANCE_CASES and INFERD_CONFORMANCE_REPORT
// are set (conformance.sh sets them).

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { Client, InferdBlob, InferdError, JsonText, Tensor, type DType, type Input, type Output, type Tensors } from "../src/index.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Spec = { [key: string]: Json };
interface Connection {
  plain: string;
  secure: string;
  ca: string;
  server_name: string;
  tokens: Record<string, string>;
  max_message_bytes: number;
}

const env = process.env;
const vars = ["INFERD_CONFORMANCE", "INFERD_CONFORMANCE_CASES", "INFERD_CONFORMANCE_REPORT"];
const missing = vars.filter((name) => !env[name]);

function input(spec: Spec): Input {
  if ("json" in spec) return spec["json"] as Input;
  if ("json_text" in spec) return new JsonText(spec["json_text"] as string);
  if ("text" in spec) return spec["text"] as string;
  if ("blob" in spec) {
    const blob = spec["blob"] as Spec;
    return new InferdBlob(Buffer.from(blob["base64"] as string, "base64"), blob["content_type"] as string);
  }
  const tensors: Record<string, Tensor<ArrayLike<number | boolean | string>>> = {};
  for (const t of spec["tensors"] as Spec[]) {
    tensors[t["name"] as string] = new Tensor(t["dtype"] as DType, t["shape"] as number[], t["values"] as (number | boolean | string)[]);
  }
  return tensors;
}

function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_, v) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v)) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.slice(0, 300);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** Where `got` differs from `want`: numbers within `tolerance` (relative or absolute) where
 * want is a float (JSON's whole numbers, which JavaScript cannot tell from ints, exactly,
 * unless `floats`: a float tensor's values). */
function close(got: unknown, want: Json, tolerance: number, where: string, floats = false): string[] {
  if (isObject(want)) {
    const keys = Object.keys(want).sort();
    if (!isObject(got) || show(Object.keys(got).sort()) !== show(keys)) return [`${where}: expected keys ${show(keys)}, got ${show(got)}`.slice(0, 300)];
    return keys.flatMap((key) => close(got[key], want[key]!, tolerance, `${where}.${key}`, floats));
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) return [`${where}: expected ${want.length} items, got ${show(got)}`.slice(0, 300)];
    return want.flatMap((item, i) => close(got[i], item, tolerance, `${where}[${i}]`, floats));
  }
  if (typeof want === "number" && typeof got === "number" && (floats || !Number.isInteger(want))) {
    const diff = Math.abs(got - want);
    if (got === want || diff <= Math.max(tolerance * Math.max(Math.abs(got), Math.abs(want)), tolerance)) return [];
  } else if (typeof got === typeof want && got === want) {
    return [];
  }
  return [`${where}: expected ${show(want)}, got ${show(got)}`.slice(0, 300)];
}

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff || i + 1 === text.length) count++;
    else {
      count++;
      i++;
    }
  }
  return count;
}

function output(got: Output, want: Spec, tolerance: number): string[] {
  if ("json" in want) return close(got, want["json"]!, tolerance, "output");
  if ("text" in want) return close(got, want["text"]!, 0, "output");
  if ("text_length" in want) {
    return typeof got === "string" && codePoints(got) === want["text_length"] ? [] : [`output: ${typeof got === "string" ? codePoints(got) : typeof got} characters`];
  }
  if ("blob" in want) {
    if (!(got instanceof InferdBlob)) return [`output: expected a blob, got ${show(got)}`];
    const blob = want["blob"] as Spec;
    const data = Buffer.from(blob["base64"] as string, "base64");
    return Buffer.from(got.data).equals(data) && got.contentType === blob["content_type"] ? [] : [`output: blob ${got.contentType} ${got.data.length} bytes`];
  }
  const specs = want["tensors"] as Spec[];
  const names = specs.map((t) => t["name"] as string);
  if (!isObject(got) || show(Object.keys(got).sort()) !== show([...names].sort())) return [`output: expected tensors ${show(names)}, got ${show(got)}`];
  const tensors = got as Tensors;
  const problems: string[] = [];
  for (const spec of specs) {
    const tensor = tensors[spec["name"] as string]!;
    if (!(tensor instanceof Tensor)) {
      problems.push(`tensor ${spec["name"]}: not a Tensor`);
      continue;
    }
    const dtype = spec["dtype"] as string;
    if (tensor.dtype !== dtype || show(tensor.shape) !== show(spec["shape"])) {
      problems.push(`tensor ${spec["name"]}: ${tensor.dtype}${show(tensor.shape)}, expected ${dtype}${show(spec["shape"])}`);
      continue;
    }
    problems.push(...close(Array.from(tensor.values as ArrayLike<unknown>), spec["values"]!, tolerance, `tensor ${spec["name"]}`, dtype.startsWith("float")));
  }
  return problems;
}

function error(failure: InferdError, want: Spec): string[] {
  const problems: string[] = [];
  if (failure.code !== want["code"]) problems.push(`code: expected ${want["code"]}, got ${failure.code} (${failure.message})`);
  const spec = (want["error"] ?? {}) as Spec;
  if ("reason" in spec && failure.reason !== spec["reason"]) problems.push(`reason: expected ${spec["reason"]}, got ${failure.reason}`);
  for (const part of (spec["message_contains"] ?? []) as string[]) if (!failure.message.includes(part)) problems.push(`message ${show(failure.message)} lacks ${show(part)}`);
  for (const part of (spec["message_excludes"] ?? []) as string[]) if (failure.message.includes(part)) problems.push(`message ${show(failure.message)} has ${show(part)}`);
  for (const [key, value] of Object.entries((spec["details"] ?? {}) as Spec)) {
    if (failure.details[key] !== value) problems.push(`details[${show(key)}]: expected ${show(value)}, got ${show(failure.details[key])}`);
  }
  return problems;
}

async function call(client: Client, spec: Spec, want: Spec): Promise<string[]> {
  const kind = spec["call"] as string;
  const model = (spec["model"] ?? "") as string;
  const tolerance = Number(want["tolerance"] ?? 0);
  switch (kind) {
    case "health": {
      const status = await client.health((spec["service"] ?? "") as string);
      return status === want["health"] ? [] : [`health: ${status}`];
    }
    case "setup":
    case "load": {
      const setupMs = kind === "setup" ? await client.setup(model) : await client.load(model);
      return setupMs >= 0 ? [] : [`setup_ms ${setupMs}`];
    }
    case "unload":
      await client.unload(model);
      return [];
    case "models": {
      const found = new Map((await client.models()).map((info) => [info.name, info]));
      const problems: string[] = [];
      for (const [name, fields] of Object.entries(want["models"] as Spec)) {
        const info = found.get(name);
        if (!info) {
          problems.push(`model ${name} not listed`);
          continue;
        }
        const seen: Record<string, unknown> = {
          state: info.state,
          input_format: info.inputFormat,
          unary: info.unary,
          streaming: info.streaming,
          batching: info.batching !== null,
        };
        for (const [key, value] of Object.entries(fields as Spec)) if (seen[key] !== value) problems.push(`${name}.${key}: ${show(seen[key])}, expected ${show(value)}`);
      }
      return problems;
    }
  }
  const request = { parameters: (spec["parameters"] ?? undefined) as Record<string, unknown> | undefined, id: (spec["id"] ?? "") as string };
  const id = want["id"] ?? request.id;
  const payload = input(spec["input"] as Spec);
  if (kind === "infer") {
    const result = await client.infer(model, payload, request);
    const problems = result.id === id ? [] : [`id: ${show(result.id)}`];
    return "output" in want ? [...problems, ...output(result.output, want["output"] as Spec, tolerance)] : problems;
  }
  const chunks: Output[] = [];
  let final = false;
  for await (const chunk of client.stream(model, payload, request)) {
    if (chunk.id !== id || chunk.index !== chunks.length) return [`chunk ${chunks.length}: id ${show(chunk.id)}, index ${chunk.index}`];
    if (chunk.output !== undefined) chunks.push(chunk.output);
    final = chunk.final;
    if (chunks.length === spec["cancel_after"]) break; // leaving the loop cancels the call
  }
  const problems = final || "cancel_after" in spec ? [] : ["no final message"];
  return [...problems, ...close(chunks, ((want["chunks"] ?? []) as Spec[]).map((c) => c["text"]!), 0, "chunks")];
}

async function runCase(spec: Spec, connection: Connection, tokens: Record<string, string>): Promise<string[]> {
  const secure = spec["server"] === "secure";
  const tls = secure && !spec["plaintext"] ? { ca: connection.ca, serverName: connection.server_name } : false;
  const name = spec["token"] as string | undefined;
  const token = name ? { ...connection.tokens, ...tokens }[name] : undefined;
  const timeoutMs = (spec["timeout_ms"] ?? 30000) as number;
  const want = spec["expect"] as Spec;
  const client = new Client(secure ? connection.secure : connection.plain, { tls, token, timeoutMs, maxReceiveBytes: connection.max_message_bytes });
  let problems: string[];
  try {
    problems = await call(client, spec, want);
  } catch (failure) {
    if (failure instanceof InferdError) return error(failure, want);
    return [`raised ${failure instanceof Error ? `${failure.name}: ${failure.message}` : show(failure)}`];
  } finally {
    client.close();
  }
  if (want["code"] !== "OK") problems.push(`expected ${want["code"]}, the call succeeded`);
  return problems;
}

test("conformance: every case of cases.json", { skip: missing.length ? `${missing.join(", ")} not set` : false }, async (t) => {
  const connection = JSON.parse(readFileSync(env["INFERD_CONFORMANCE"]!, "utf8")) as Connection;
  const file = JSON.parse(readFileSync(env["INFERD_CONFORMANCE_CASES"]!, "utf8")) as { tokens?: Record<string, string>; cases: Spec[] };
  const results: { name: string; passed: boolean; problems: string[] }[] = [];
  try {
    for (const spec of file.cases) {
      const name = spec["name"] as string;
      let problems: string[] = [];
      await t.test(name, async () => {
        problems = await runCase(spec, connection, file.tokens ?? {});
        assert.deepEqual(problems, [], problems.join("; "));
      });
      results.push({ name, passed: problems.length === 0, problems });
    }
  } finally {
    writeFileSync(env["INFERD_CONFORMANCE_REPORT"]!, JSON.stringify({ language: "typescript", results }, null, 1) + "\n");
  }
  const failed = results.filter((result) => !result.passed).map((result) => result.name);
  assert.deepEqual(failed, [], `failed: ${failed.join(", ")}`);
});
