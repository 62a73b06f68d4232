/** node-gpu / node: @tensorflow/tfjs-node(-gpu), the TensorFlow C library. */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { plural } from './format';
import { notSelected, selected, type Outcome } from './outcome';
import { availableThreads, importOptional, setBackendOrThrow } from './tfjs';

const PACKAGES: Record<'node-gpu' | 'node', string> = {
  'node-gpu': '@tensorflow/tfjs-node-gpu',
  node: '@tensorflow/tfjs-node',
};

/** Which tfjs-node flavour has been imported into this process (they both register 'tensorflow'). */
let tensorflowPackage: string | undefined;

export async function tryTensorflow(name: 'node-gpu' | 'node'): Promise<Outcome> {
  const pkg = PACKAGES[name];
  let using = tensorflowPackage;
  if (using === undefined || (name === 'node-gpu' && using !== pkg)) {
    // Importing either package registers the 'tensorflow' backend and switches to it.
    const imported = await importOptional(pkg);
    if (!imported.ok) return notSelected(name, imported.status, imported.detail);
    tensorflowPackage = using = pkg;
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    return notSelected(
      name,
      'failed',
      `${using} loaded but registered no 'tensorflow' backend on this @tensorflow/tfjs-core ` +
        `(${tf.version_core}); its tfjs-core copy differs — align the versions`,
    );
  }
  await setBackendOrThrow('tensorflow');
  const backend = tf.backend() as { isUsingGpuDevice?: boolean; isGPUPackage?: boolean };
  const onGpu = backend.isUsingGpuDevice === true;
  const threads = availableThreads();
  if (name === 'node-gpu') {
    if (!onGpu) {
      return notSelected(
        name,
        'no-adapter',
        `${pkg} loaded, but TensorFlow found no CUDA GPU and would run on the CPU ` +
          '(check the NVIDIA driver and the CUDA/cuDNN versions libtensorflow needs)',
        'no CUDA GPU (TensorFlow fell back to CPU)',
      );
    }
    return selected(name, `${pkg}: TensorFlow C on a CUDA GPU`, {
      threads,
      simd: false,
      memoryLimitBytes: 0,
      device: 'CUDA GPU (TensorFlow C)',
      notes: ['GPU memory size is not exposed by tfjs-node-gpu (memoryLimitBytes = 0: unknown)'],
      features: 'CUDA',
    });
  }
  const via = using === pkg ? pkg : `${using} (its CPU TensorFlow; ${pkg} itself not loaded)`;
  return selected(name, `${via}: TensorFlow C on the CPU`, {
    threads,
    simd: false,
    memoryLimitBytes: os.totalmem(),
    device: onGpu ? 'CUDA GPU (TensorFlow C)' : 'CPU (TensorFlow C)',
    notes: [],
    features: `TensorFlow C, ${plural(threads, 'thread')}`,
  });
}
