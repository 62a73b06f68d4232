/**
 * The model chosen for the console, shared across pages (the Runs page may open a run here).
 * `model` is a models.list `ref` (a model directory's path), or null for "the newest".
 */
export const selection = $state({ model: null as string | null });
