/**
 * The engine's one entry to TensorFlow.js: tfjs-core, and nothing else. The engine writes its
 * backward passes out (model/, finetune/head.ts), so it needs none of tfjs's gradient definitions;
 * loading the union package for them cost every process and every training worker ~0.2 s.
 * (Tests that check against autodiff import '@tensorflow/tfjs' for its gradients.)
 */
export * from '@tensorflow/tfjs-core';
