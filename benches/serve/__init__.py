"""Serving benchmark: inferd against MLServer and a bare grpc.aio server, one load generator.

    bash benches/serve_setup.sh                  # once: ghz, MLServer's venv (idempotent)
    .venv/bin/python -m benches.serve [--duration S] [--concurrency 1,8,32,64] [--quick]
                                     [--targets a,b,...] [--out benches/results/serve.json]

Every target is started here as a subprocess on a free 127.0.0.1 port, waited for with a first
successful call, checked for the right answer (the probabilities ONNX Runtime gives when run
directly), then loaded with ghz (a Go gRPC load generator; ``--loadgen python`` uses an asyncio
client instead) at each concurrency: batch-1 requests, a warm-up, then a fixed duration, capped
in time and count. Per point: throughput (req/s), p50/p90/p99 latency (ms) and the server's
CPU seconds per request (its process tree, from psutil). Servers are always stopped at the end.

Targets (``--targets``; default all but the ``*`` ones):
  inferd-off        inferd, batching off, wine model, tensor payload ``input`` float32 [1, 13]
  inferd-on         inferd, batching on (benches/configs/batching-on.toml), same request
  inferd-json       inferd, batching off, one JSON record (inferd's own path: the Rust adapter)
  inferd-on-json *  inferd, batching on, one JSON record
  bare              benches/bare_server.py: a fixed answer, no model
  bare-model        the bare server that also runs wine.onnx on each request (ONNX Runtime,
                    inline), then gives the same fixed answer: the stack plus the model's run
  inferd-nometrics  inferd-off with its Prometheus metrics off (what the metrics cost, paired)
  inferd-traced     inferd-off tracing every call to an OTLP sink of its own (what tracing costs)
  inferd-asyncio *  inferd-off on asyncio's event loop (server.loop = "asyncio"; default: uvloop)
  bare-asyncio *    the bare server on asyncio's event loop
  mlserver-default  MLServer 1.7.1 as shipped (debug access log, metrics, 1 parallel worker)
  mlserver-best     MLServer, no access log, no metrics, parallel_workers 0 (in-process)
  mlserver-batching MLServer best + adaptive batching (max_batch_size 32, max_batch_time 2 ms)
  mlserver-pw2 *    MLServer, no access log, no metrics, parallel_workers 2
  mlp-off, mlp-on   "batching pays": benches/models.py's MLP (float32 [1, 256]), inferd
                    batching off / on, at the highest concurrency only (--mlp-concurrency)
  triton            Triton via PyTriton 0.7.0 (benches/peers/pytriton_server.py, its own venv),
                    onnxruntime in a Python function, max_batch_size 32, no dynamic batching
  triton-batching   the same with Triton's dynamic batcher (max queue delay 2 ms)
  ray               Ray Serve 2.60's gRPC proxy, one replica (benches/peers/ray_server.py); ghz
                    sends metadata application=wine (Ray routes by it; one app routes without)
  inferd-oip *      inferd-off answered over inference.GRPCInferenceService/ModelInfer (its
                    OIP servicer; not default until that lands on main)
  The OIP targets send the same ModelInferRequest (model_name "wine", input "input" FP32
  [1, 13] in raw_input_contents); ghz loads proto/inference/grpc_service.proto. Peers whose
  venv is missing (benches/serve_setup.sh) are skipped with a printed reason.

Results: benches/results/serve.json (machine facts, versions, every point, the goals' ratios)
and serve.png (throughput and p99 against concurrency; drawn with matplotlib from MLServer's
venv, benches/.venv-mlserver, as matplotlib is no dependency of inferd).

Run from the repository's root (``-m`` finds the package there). The package, by concern
(imports go one way: __main__ -> measure -> processes, loadgen -> targets -> common, and probes;
report needs only common and the results' JSON):
  __main__   the command line: options, the run's results, the JSON, the README's table
  measure    the sweep (measure) and the paired phase (measure_paired); Point, one per point
  targets    Target, the request bytes, answers decoded and checked against ONNX Runtime
  processes  the servers as subprocesses (inferd, the bare server, MLServer, the peers), stopped at the end
  loadgen    ghz and the asyncio client
  probes     machine facts: steal, CPU, versions, the cold-cache probe
  report     the goals' ratios, the table, the plot, the README's rewrite
"""
