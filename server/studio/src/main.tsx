// The Studio's entry: its styles, and the app drawn into the page.
import { render } from 'preact';
import { App } from './app.tsx';
import './styles.css';

const root = document.getElementById('studio');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
