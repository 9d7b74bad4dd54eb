// Small pieces the views share: a store hook, state badges, thumbnails of a generation's
// outputs, and a field's error text.
import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import type { Asset } from './api.ts';
import { formatBytes } from './format.ts';

/** Draws the component again whenever the store says it changed. */
export function useStore<T extends { subscribe(listener: () => void): () => void }>(store: T): T {
  const [, setVersion] = useState(0);
  useEffect(() => store.subscribe(() => setVersion((version) => version + 1)), [store]);
  return store;
}

/** A clock for relative times ("starts in 4 s"), ticking while shown. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge badge-${state}`}>{state}</span>;
}

export function FieldError({ id, messages }: { id: string; messages: string[] | undefined }) {
  if (!messages || messages.length === 0) return null;
  return (
    <p class="field-error" id={id}>
      {messages.join('; ')}
    </p>
  );
}

export function VisuallyHidden({ children }: { children: ComponentChildren }) {
  return <span class="visually-hidden">{children}</span>;
}

/** Each output of a generation: its original and every variant, as thumbnails at their own aspect ratio. */
export function Outputs({ assets, size = 'small' }: { assets: Asset[]; size?: 'small' | 'large' }) {
  const outputs = [...new Set(assets.map((asset) => asset.outputIndex))].sort((a, b) => a - b);
  return (
    <div class="outputs">
      {outputs.map((index) => {
        const own = assets.filter((asset) => asset.outputIndex === index).sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'original' ? -1 : 1));
        return (
          <section class="output" key={index} aria-label={outputs.length > 1 ? `Output ${index + 1}` : 'Output'}>
            {outputs.length > 1 && <h4 class="output-title">Output {index + 1}</h4>}
            <ul class={`thumbs thumbs-${size}`}>
              {own.map((asset) => (
                <Thumbnail key={asset.url} asset={asset} size={size} />
              ))}
            </ul>
          </section>
        );
      })}
    </div>
  );
}

function Thumbnail({ asset, size }: { asset: Asset; size: 'small' | 'large' }) {
  const [copied, setCopied] = useState(false);
  const height = size === 'large' ? 160 : 88;
  // Shown at the image's own shape, within the row's height and a width cap.
  const width = Math.min(Math.round((height * asset.width) / asset.height), size === 'large' ? 360 : 220);
  const name = asset.platform ?? 'original';
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(asset.url);
    } catch {
      window.prompt('Copy the URL', asset.url); // no clipboard permission: let the person copy it
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  const caption = (
    <p class="thumb-caption">
      <strong>{name}</strong> {asset.format.toUpperCase()} · {asset.width}×{asset.height} · {formatBytes(asset.bytes)}
    </p>
  );
  const image = (
    <img
      src={asset.url}
      alt={`${name}, ${asset.format}, ${asset.width} by ${asset.height}`}
      width={asset.width}
      height={asset.height}
      loading="lazy"
      decoding="async"
      style={{ aspectRatio: `${asset.width} / ${asset.height}` }}
      data-asset-width={asset.width}
      data-asset-height={asset.height}
    />
  );
  // In a list of work: the image (a link to it) and its figures; in the gallery, with every action.
  if (size === 'small') {
    return (
      <li class="thumb" style={{ width: `${Math.max(width, 96)}px` }}>
        <a class="thumb-image" href={asset.url} target="_blank" rel="noopener" style={{ width: `${width}px` }}>
          {image}
        </a>
        {caption}
      </li>
    );
  }
  return (
    <li class="thumb" style={{ width: `${Math.max(width, 128)}px` }}>
      <a class="thumb-image" href={asset.url} target="_blank" rel="noopener" style={{ width: `${width}px` }} tabIndex={-1} aria-hidden="true">
        {image}
      </a>
      {caption}
      <p class="thumb-actions">
        <a href={asset.url} target="_blank" rel="noopener">
          Open<VisuallyHidden> {name} {asset.format}</VisuallyHidden>
        </a>
        <a href={asset.url} download={`${name}.${asset.url.split('.').at(-1) ?? asset.format}`}>
          Download<VisuallyHidden> {name} {asset.format}</VisuallyHidden>
        </a>
        <button type="button" class="link" onClick={() => void copy()}>
          {copied ? 'Copied' : 'Copy URL'}
          <VisuallyHidden>
            {copied ? ' the URL of' : ' of'} {name} {asset.format}
          </VisuallyHidden>
        </button>
      </p>
    </li>
  );
}
