/** Hash routing (#/runs): real links and the back button work; the token lives in sessionStorage. */
export const PAGES = ['data', 'pretrain', 'finetune', 'console', 'runs', 'models'] as const;
export type Page = (typeof PAGES)[number];

function fromHash(): Page {
  const name = location.hash.replace(/^#\/?/, '');
  return (PAGES as readonly string[]).includes(name) ? (name as Page) : 'data';
}

export const route = $state({ page: fromHash() });

window.addEventListener('hashchange', () => {
  route.page = fromHash();
});

export function go(page: Page): void {
  location.hash = `#/${page}`;
}
