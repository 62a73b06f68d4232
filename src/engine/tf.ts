/**
 * The engine's one entry to TensorFlow.js. tfjs-core's gradient definitions ship only in its ESM
 * tree, which Node cannot load (directory imports); the union package's CommonJS build registers
 * them in tfjs's global gradient registry, which this core shares.
 */
import '@tensorflow/tfjs';

export * from '@tensorflow/tfjs-core';
