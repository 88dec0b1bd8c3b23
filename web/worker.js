// The page's model runs here, in a Web Worker: loading TensorFlow.js, compiling its WASM backend,
// loading the weights and every prediction happen off the page's main thread, so the page
// stays responsive (and Lighthouse counts none of it as blocking time). app.js sends the 224 x
// 224 model input of a photo or camera frame; this worker answers with the probabilities and
// the pooled backbone features, each averaged over the views asked for.
//
// A classic worker that loads the same TF.js files the page used to load (importScripts), so the
// service worker's precache list holds them and the page works offline as before.
//
// Messages, answered in the order they arrive (one at a time: a model update waits for the
// predictions asked before it, and later ones run on the new model):
//   {id, type: "load", modelUrl, backend, threads, size, classes, honesty}
//       -> {backend, threads, honesty: {name: Float32Array}} (the arrays behind the verdict's
//          feature-space scores, metadata.honesty; none for an older export)
//   {id, type: "infer", pixels: Float32Array (transferred), size, views}
//       -> {probabilities: Float32Array, features: Float32Array | null, ms: the model's time}
// An error is answered as {id, error: message}.

importScripts(
  "node_modules/@tensorflow/tfjs/dist/tf.min.js",
  "node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
);

const WASM_DIR = new URL("node_modules/@tensorflow/tfjs-backend-wasm/dist/", self.location).href;

let backend = null;
let model = null;
let classCount = 0;

async function startBackend(wanted, threads) {
  tf.wasm.setWasmPaths(WASM_DIR);
  // Threads need cross-origin isolation (SharedArrayBuffer). TF.js uses half the logical cores
  // (at least 1, at most 4) and caps setThreadsCount at that too; ?threads=N on the page (for
  // the benchmark) asks for N, and this worker's navigator then reports 2N cores so TF.js'
  // cap lets N through.
  if (threads) {
    tf.wasm.setThreadsCount(threads);
    Object.defineProperty(self.navigator, "hardwareConcurrency", { value: 2 * threads });
  }
  // WASM first: it computes like the CPU in every browser and is fast with SIMD and threads.
  for (const name of wanted ? [wanted] : ["wasm", "webgl", "cpu"]) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch (error) {
      console.warn(`TensorFlow.js backend ${name} is not available`, error);
    }
  }
  throw new Error("no TensorFlow.js backend works in this browser");
}

async function load({ modelUrl, backend: wanted, threads, size, classes, honesty }) {
  backend ??= await startBackend(wanted, threads);
  const loaded = await tf.loadGraphModel(modelUrl);
  // One prediction now, so the first real one does not pay for the kernels' set-up.
  tf.dispose(
    tf.tidy(() =>
      loaded.predict({ image: tf.zeros([1, size, size, 3]), view: tf.tensor1d([0], "int32") }),
    ),
  );
  const arrays = {};
  if (honesty) {
    for (const [name, tensors] of Object.entries(loaded.weights)) {
      if (name.startsWith(honesty.weights_prefix)) {
        arrays[name.slice(honesty.weights_prefix.length)] = await tensors[0].data();
      }
    }
  }
  const old = model;
  model = loaded;
  classCount = classes;
  if (old) old.dispose();
  const threadCount = backend === "wasm" ? tf.wasm.getThreadsCount() : 0;
  return { result: { backend, threads: threadCount, honesty: arrays }, transfer: [] };
}

async function infer({ pixels, size, views }) {
  const started = performance.now();
  const outputs = tf.tidy(() =>
    model.predict({
      image: tf.tensor4d(pixels, [1, size, size, 3]),
      view: tf.tensor1d(views, "int32"),
    }),
  );
  // Two outputs (graph outputs carry no names here): the probabilities have a column per class.
  const [first, second] = Array.isArray(outputs) ? outputs : [outputs];
  const [probs, feats] =
    second && second.shape[1] === classCount ? [second, first] : [first, second];
  const probabilities = await probs.data();
  const features = feats ? await feats.data() : null;
  tf.dispose(outputs);
  const transfer = [probabilities.buffer, ...(features ? [features.buffer] : [])];
  // How long the model took (the page shows the live loop's fastest and median, for the benchmark).
  const ms = performance.now() - started;
  return { result: { probabilities, features, ms }, transfer };
}

const handlers = { load, infer };
let queue = Promise.resolve();

self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      const { result, transfer } = await handlers[data.type](data);
      self.postMessage({ id: data.id, result }, transfer);
    } catch (error) {
      self.postMessage({ id: data.id, error: error.message ?? String(error) });
    }
  });
};
