// Times one ONNX model's forward under ONNX Runtime (npm onnxruntime-node), the
// "ONNX Runtime" peer column of bench/run.py, which writes the model, its input
// and PyTorch's output on that input. The session is the fair single-core
// configuration: one intra-op and one inter-op thread, sequential execution,
// every graph optimisation. Before timing, ORT's output must match PyTorch's
// within --tol (max|ort - torch| / max|torch|); otherwise no time is reported,
// since a fast wrong answer is no baseline. Prints one JSON line.
//
//   NODE_PATH=DIR/node_modules node bench/ort_time.js MODEL.onnx IN.bin int32|float32 DIM,DIM REF.bin REPS TOL
'use strict';
const fs = require('fs');

function fail(msg) {
  console.log(JSON.stringify({ error: msg }));
  process.exit(0);
}

async function main() {
  const [model, inPath, inType, shapeArg, refPath, repsArg, tolArg] = process.argv.slice(2);
  if (!tolArg) {
    console.error('usage: ort_time.js MODEL.onnx IN.bin int32|float32 DIM,DIM REF.bin REPS TOL');
    process.exit(2);
  }
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node: ${e.message.split('\n')[0]}`);
  }
  const shape = shapeArg.split(',').map(Number);
  const raw = fs.readFileSync(inPath);
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const data = inType === 'int32' ? new Int32Array(buf) : new Float32Array(buf);
  const rraw = fs.readFileSync(refPath);
  const ref = new Float32Array(rraw.buffer.slice(rraw.byteOffset, rraw.byteOffset + rraw.byteLength));
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const feeds = { [session.inputNames[0]]: new ort.Tensor(inType, data, shape) };
  const outName = session.outputNames[0];

  // agreement with PyTorch on the same input (also the warm-up run)
  const y = (await session.run(feeds))[outName].data;
  if (y.length !== ref.length) fail(`output has ${y.length} values, PyTorch's ${ref.length}`);
  let diff = 0, scale = 0;
  for (let i = 0; i < y.length; i++) {
    const d = Math.abs(y[i] - ref[i]);
    if (!(d <= diff)) diff = d; // NaN propagates as a mismatch
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  const rel = diff / scale;
  if (!(rel <= Number(tolArg))) fail(`output differs from PyTorch's: ${rel.toPrecision(3)} > tolerance ${tolArg}`);

  const times = [];
  for (let r = 0; r < Number(repsArg); r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) * 1e-9);
  }
  console.log(JSON.stringify({ version: ort.env.versions.node || ort.env.versions.common, rel, prefill: times }));
}

main().catch((e) => fail(String(e.message || e).split('\n')[0]));
