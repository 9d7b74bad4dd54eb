// What to make: a prompt (or one per line, a batch), or photos (one item each) with an
// operation; a model or tier, platforms, formats, outputs and an optional seed. The server
// validates everything: its messages are shown beside the fields they name.
import { useEffect, useRef, useState } from 'preact/hooks';
import { describeError, type GenerateItem, type KilnClient, type Model, type ProblemView } from './api.ts';
import { ASPECT_RATIOS, FORMATS, OPERATIONS, PLATFORMS, TIERS, type ImageOperationId } from './options.ts';
import { FieldError } from './ui.tsx';
import type { WorkStore } from './work.ts';

type Mode = 'prompt' | 'photo';

interface Photo {
  file: File;
  preview: string;
  width: number | undefined;
  height: number | undefined;
}

export function CreateForm({ kiln, store }: { kiln: KilnClient; store: WorkStore }) {
  const [mode, setMode] = useState<Mode>('prompt');
  const [prompt, setPrompt] = useState('');
  const [perLine, setPerLine] = useState(false);
  const [photos, setPhotos] = useState<Photo[]>([]);
  const [operation, setOperation] = useState<ImageOperationId>(OPERATIONS[0]?.id ?? 'upscale');
  const [scale, setScale] = useState<2 | 4>(2);
  const [strength, setStrength] = useState('0.8');
  const [background, setBackground] = useState<'white' | 'transparent'>('white');
  const [route, setRoute] = useState(''); // '' (the tenant's tier chooses), 'tier:…' or 'model:…'
  const [aspectRatio, setAspectRatio] = useState<(typeof ASPECT_RATIOS)[number]>('1:1');
  const [platforms, setPlatforms] = useState<string[]>(['instagram-post']);
  const [formats, setFormats] = useState<string[]>(['webp']);
  const [outputs, setOutputs] = useState(1);
  const [seed, setSeed] = useState('');
  const [models, setModels] = useState<Model[]>([]);
  const [problem, setProblem] = useState<ProblemView | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [done, setDone] = useState<string | undefined>();

  useEffect(() => {
    kiln.models().then(setModels, () => setModels([]));
  }, [kiln]);
  // Each preview's object URL lives until other photos are picked, or the form goes: not when a
  // photo's size comes in (that is the same preview, still shown).
  const previews = useRef<string[]>([]);
  useEffect(() => () => previews.current.forEach((url) => URL.revokeObjectURL(url)), []);

  const choice = OPERATIONS.find((entry) => entry.id === operation);
  const currentOperation = mode === 'prompt' ? 'text-to-image' : operation;
  const offered = models.filter((model) => model.operations.includes(currentOperation));
  const lines = perLine ? prompt.split('\n').map((line) => line.trim()).filter((line) => line !== '') : [prompt];
  const count = mode === 'prompt' ? lines.length : photos.length;

  const pickPhotos = (files: FileList | null) => {
    const picked = [...(files ?? [])].map((file): Photo => ({ file, preview: URL.createObjectURL(file), width: undefined, height: undefined }));
    previews.current.forEach((url) => URL.revokeObjectURL(url));
    previews.current = picked.map((photo) => photo.preview);
    setPhotos(picked);
    picked.forEach((photo, index) => {
      const image = new Image();
      image.onload = () => setPhotos((current) => current.map((entry, at) => (at === index && entry.file === photo.file ? { ...entry, width: image.naturalWidth, height: image.naturalHeight } : entry)));
      image.src = photo.preview;
    });
  };

  /** Server field names → what the person sees: `items.3.prompt` is line 4's prompt. */
  const errorsFor = (field: string): string[] | undefined => {
    if (!problem) return undefined;
    const messages: string[] = [];
    for (const [name, list] of Object.entries(problem.fields)) {
      const item = /^items\.(\d+)\.(.+)$/.exec(name);
      const base = item?.[2] ?? name;
      if (base !== field && !base.startsWith(`${field}.`)) continue;
      const where = item ? `${mode === 'prompt' ? 'line' : 'photo'} ${Number(item[1]) + 1}: ` : '';
      messages.push(...list.map((message) => where + message));
    }
    return messages.length > 0 ? messages : undefined;
  };
  const described = (field: string) => (errorsFor(field) ? { 'aria-invalid': true, 'aria-describedby': `error-${field}` } : {});

  const submit = async (event: Event) => {
    event.preventDefault();
    setProblem(undefined);
    setDone(undefined);
    const shared = {
      platforms: platforms as NonNullable<GenerateItem['platforms']>,
      formats: formats as NonNullable<GenerateItem['formats']>,
      outputs,
      ...(route.startsWith('tier:') ? { tier: route.slice(5) as NonNullable<GenerateItem['tier']> } : {}),
      ...(route.startsWith('model:') ? { model: route.slice(6) as NonNullable<GenerateItem['model']> } : {}),
    };
    // A seed the browser could not read as a number goes as typed: the server says what is wrong.
    const typed = Number(seed);
    const seedValue = seed.trim() === '' ? undefined : Number.isFinite(typed) ? typed : (seed as unknown as number);
    const seeded = seedValue === undefined ? {} : { seed: seedValue };
    try {
      let items: GenerateItem[];
      const labels: (string | undefined)[] = [];
      if (mode === 'prompt') {
        items = lines.map((line) => ({ ...shared, ...seeded, prompt: line, aspectRatio }));
      } else {
        if (photos.length === 0) {
          setProblem({ message: 'Choose a photo to start from.', code: 'BAD_REQUEST', fields: { file: ['choose a PNG, JPEG, WebP or AVIF image'] } });
          return;
        }
        items = [];
        for (const [index, photo] of photos.entries()) {
          setBusy(`Uploading ${photo.file.name}${photos.length > 1 ? ` (${index + 1} of ${photos.length})` : ''}…`);
          let source;
          try {
            source = await kiln.sources.upload(photo.file, { filename: photo.file.name });
          } catch (error) {
            const view = describeError(error);
            setProblem({ ...view, message: `${photo.file.name}: ${view.message}`, fields: { file: [`${photo.file.name}: ${view.fields.file?.join('; ') ?? view.message}`] } });
            return;
          }
          labels.push(photo.file.name);
          items.push(operationItem(operation, source.id, { prompt, scale, strength: Number(strength), seed: seedValue, background }, shared));
        }
      }
      setBusy(count > 1 ? `Submitting ${count}…` : 'Submitting…');
      if (items.length === 1 && items[0]) {
        const { id } = await kiln.generate(items[0]);
        await store.added([id], items, labels);
        setDone('Queued: watch it below.');
      } else {
        const { batchId, ids } = await kiln.batch({ items });
        await store.added(ids, items, labels, batchId);
        setDone(`Queued a batch of ${ids.length}: watch them below.`);
      }
    } catch (error) {
      setProblem(describeError(error));
    } finally {
      setBusy(undefined);
    }
  };

  const toggle = (list: string[], value: string, set: (next: string[]) => void) => set(list.includes(value) ? list.filter((entry) => entry !== value) : [...list, value]);
  const needsPrompt = mode === 'prompt' || choice?.prompt === 'required';
  const takesSeed = mode === 'prompt' || choice?.seed === true;
  // The optimiser picks each step's model and makes one catalogue image: neither is asked.
  const optimising = mode !== 'prompt' && choice?.id === 'optimize';

  return (
    <form class="create" onSubmit={(event) => void submit(event)} noValidate aria-labelledby="create-title">
      <h2 id="create-title">Create</h2>
      <fieldset class="segmented">
        <legend>Start from</legend>
        {(['prompt', 'photo'] as const).map((value) => (
          <label key={value}>
            <input type="radio" name="mode" value={value} checked={mode === value} onChange={() => setMode(value)} />
            {value === 'prompt' ? 'A prompt' : 'A photo'}
          </label>
        ))}
      </fieldset>

      {mode === 'photo' && (
        <>
          <div class="field">
            <label for="photo">Photo{photos.length > 1 ? 's' : ''} (several make a batch)</label>
            <input id="photo" type="file" accept="image/png,image/jpeg,image/webp,image/avif" multiple onChange={(event) => pickPhotos(event.currentTarget.files)} {...described('file')} />
            <FieldError id="error-file" messages={errorsFor('file') ?? errorsFor('sourceId')} />
            {photos.length > 0 && (
              <ul class="photos">
                {photos.map((photo) => (
                  <li key={photo.preview}>
                    <img src={photo.preview} alt="" width={photo.width} height={photo.height} />
                    <span>
                      {photo.file.name}
                      {photo.width && ` · ${photo.width}×${photo.height}`}
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </div>
          <div class="field">
            <label for="operation">Operation</label>
            <select id="operation" value={operation} onChange={(event) => setOperation(event.currentTarget.value as ImageOperationId)} {...described('operation')}>
              {OPERATIONS.map((entry) => (
                <option key={entry.id} value={entry.id}>
                  {entry.label} — {entry.hint}
                </option>
              ))}
            </select>
            <FieldError id="error-operation" messages={errorsFor('operation')} />
          </div>
          {choice?.scale && (
            <div class="field">
              <label for="scale">Scale</label>
              <select id="scale" value={scale} onChange={(event) => setScale(event.currentTarget.value === '4' ? 4 : 2)} {...described('scale')}>
                <option value="2">×2</option>
                <option value="4">×4</option>
              </select>
              <FieldError id="error-scale" messages={errorsFor('scale')} />
            </div>
          )}
          {choice?.background && (
            <div class="field">
              <label for="background">Background</label>
              <select id="background" value={background} onChange={(event) => setBackground(event.currentTarget.value === 'transparent' ? 'transparent' : 'white')} {...described('background')}>
                <option value="white">White</option>
                <option value="transparent">Transparent (PNG and WebP keep it)</option>
              </select>
              <FieldError id="error-background" messages={errorsFor('background')} />
            </div>
          )}
          {choice?.strength && (
            <div class="field">
              <label for="strength">Strength (0 keeps the photo, 1 ignores it)</label>
              <input id="strength" type="number" min="0" max="1" step="0.05" value={strength} onInput={(event) => setStrength(event.currentTarget.value)} {...described('strength')} />
              <FieldError id="error-strength" messages={errorsFor('strength')} />
            </div>
          )}
        </>
      )}

      {needsPrompt && (
        <div class="field">
          <label for="prompt">{mode === 'prompt' && perLine ? 'Prompts, one per line' : 'Prompt'}</label>
          <textarea id="prompt" rows={perLine ? 5 : 3} value={prompt} onInput={(event) => setPrompt(event.currentTarget.value)} {...described('prompt')} />
          <FieldError id="error-prompt" messages={errorsFor('prompt')} />
          {mode === 'prompt' && (
            <label class="check">
              <input type="checkbox" checked={perLine} onChange={(event) => setPerLine(event.currentTarget.checked)} />
              One prompt per line (a batch)
            </label>
          )}
        </div>
      )}

      <div class="row">
        <div class="field">
          <label for="route">Model or tier</label>
          <select id="route" value={route} onChange={(event) => setRoute(event.currentTarget.value)} {...described('model')}>
            <option value="">Your tier's choice</option>
            <optgroup label="Tier">
              {TIERS.map((tier) => (
                <option key={tier} value={`tier:${tier}`}>
                  {tier}
                </option>
              ))}
            </optgroup>
            <optgroup label="Model">
              {offered.map((model) => (
                <option key={model.id} value={`model:${model.id}`} disabled={!model.available}>
                  {model.id} ({model.tier}){model.available ? '' : ' — not on your tier'}
                </option>
              ))}
            </optgroup>
          </select>
          <FieldError id="error-model" messages={errorsFor('model') ?? errorsFor('tier')} />
        </div>
        {mode === 'prompt' && (
          <div class="field">
            <label for="aspect">Aspect ratio</label>
            <select id="aspect" value={aspectRatio} onChange={(event) => setAspectRatio(event.currentTarget.value as (typeof ASPECT_RATIOS)[number])}>
              {ASPECT_RATIOS.map((ratio) => (
                <option key={ratio} value={ratio}>
                  {ratio}
                </option>
              ))}
            </select>
          </div>
        )}
      </div>

      <fieldset class="choices" {...described('platforms')}>
        <legend>Platforms</legend>
        {PLATFORMS.map((platform) => (
          <label key={platform.id} class="check">
            <input type="checkbox" name="platform" value={platform.id} checked={platforms.includes(platform.id)} onChange={() => toggle(platforms, platform.id, setPlatforms)} />
            {platform.label}
          </label>
        ))}
        <FieldError id="error-platforms" messages={errorsFor('platforms')} />
      </fieldset>

      <fieldset class="choices" {...described('formats')}>
        <legend>Formats</legend>
        {FORMATS.map((format) => (
          <label key={format} class="check">
            <input type="checkbox" name="format" value={format} checked={formats.includes(format)} onChange={() => toggle(formats, format, setFormats)} />
            {format.toUpperCase()}
          </label>
        ))}
        <FieldError id="error-formats" messages={errorsFor('formats')} />
      </fieldset>

      <div class="row">
{!optimising && (
        <div class="field">
          <label for="outputs">Outputs</label>
          <select id="outputs" value={outputs} onChange={(event) => setOutputs(Number(event.currentTarget.value))} {...described('outputs')}>
            {[1, 2, 3, 4].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
          <FieldError id="error-outputs" messages={errorsFor('outputs')} />
        </div>
        )}
        {takesSeed && (
          <div class="field">
            <label for="seed">Seed (optional)</label>
            <input id="seed" type="text" inputMode="numeric" autoComplete="off" value={seed} onInput={(event) => setSeed(event.currentTarget.value)} {...described('seed')} />
            <FieldError id="error-seed" messages={errorsFor('seed')} />
          </div>
        )}
      </div>

      <div class="submit">
        <button type="submit" class="primary" disabled={busy !== undefined}>
          {busy ?? (count > 1 ? `Generate ${count}` : 'Generate')}
        </button>
        <p class="status" role="status" aria-live="polite">
          {done}
        </p>
      </div>
      {problem && (
        <div class="problem" role="alert">
          <p>{problem.message}</p>
        </div>
      )}
    </form>
  );
}

/** One photo's item, as its operation takes it; a new operation is one more case. */
function operationItem(
  operation: ImageOperationId,
  sourceId: string,
  fields: { prompt: string; scale: 2 | 4; strength: number; seed: number | undefined; background: 'white' | 'transparent' },
  shared: Omit<GenerateItem, 'prompt' | 'operation'>,
): GenerateItem {
  const seeded = fields.seed === undefined ? {} : { seed: fields.seed };
  switch (operation) {
    case 'upscale':
      return { ...shared, operation, sourceId, scale: fields.scale };
    case 'remove-background':
      return { ...shared, operation, sourceId };
    case 'edit':
      return { ...shared, ...seeded, operation, sourceId, prompt: fields.prompt };
    case 'image-to-image':
      return { ...shared, ...seeded, operation, sourceId, prompt: fields.prompt, strength: fields.strength };
    case 'optimize': {
      // It picks a model for each step, and makes one catalogue image of a photo.
      const { model: _model, outputs: _outputs, ...framing } = shared;
      return { ...framing, operation, sourceId, background: fields.background };
    }
  }
}
