// first: before any zod schema is built
import './lib/jitless';
import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { setupI18n } from './lib/i18n';
import { startSettings } from './lib/settings.svelte';
import { startState } from './lib/state.svelte';

setupI18n();
startSettings();
startState();

const target = document.getElementById('app');
if (!target) throw new Error('#app is missing from index.html');
export default mount(App, { target });
