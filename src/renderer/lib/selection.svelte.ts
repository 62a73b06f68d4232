/**
 * What one page hands another: the model the console opens with (a model directory's path, as
 * `models.list` gives it in `ref`). The Runs page sets it, then navigates to the console.
 */
export const selection = $state({ selectedModel: null as string | null });

export function selectModel(ref: string | null): void {
  selection.selectedModel = ref;
}
