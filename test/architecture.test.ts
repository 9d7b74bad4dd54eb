// The house rules, checked from the sources: imports point down (server → jobs → db), the
// client-sdk reaches the server by types only, the Studio's browser code (server/studio/src)
// reaches Kiln only through the client-sdk, nothing imports in a circle, and SQL lives in db/.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const root = path.join(import.meta.dirname, '..');
const ROOMS = ['client-sdk', 'server', 'jobs', 'db'] as const;
/** The Studio's browser code: a room of its own inside server/, a client of Kiln like any other. */
const STUDIO = 'server/studio/src';
type Room = (typeof ROOMS)[number] | 'studio';

interface SourceFile {
  file: string; // relative to the root, e.g. 'jobs/queue.ts'
  room: Room;
  text: string;
  imports: { target: string; typeOnly: boolean }[];
}

function sourceFiles(): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (folder: string, room: Room) => {
    for (const entry of readdirSync(path.join(root, folder), { withFileTypes: true })) {
      const relative = path.posix.join(folder, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'dist' && entry.name !== 'node_modules') walk(relative, relative === STUDIO ? 'studio' : room);
      } else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) {
        const text = readFileSync(path.join(root, relative), 'utf8');
        const imports = [...text.matchAll(/^(import|export)\s+(type\s+)?[^'"]*?from\s+'(\.[^']+)'/gm)].map((match) => ({
          target: path.posix.normalize(path.posix.join(path.posix.dirname(relative), match[3]!)),
          typeOnly: match[2] !== undefined,
        }));
        files.push({ file: relative, room, text, imports });
      }
    }
  };
  for (const room of ROOMS) walk(room, room);
  return files;
}

const roomOf = (file: string): string => (file.startsWith(`${STUDIO}/`) ? 'studio' : file.split('/')[0]!);
/** What each room may import from: only rooms below it (the Studio: the client-sdk, and the server's types). */
const MAY_IMPORT: Record<Room, readonly string[]> = { 'client-sdk': ['client-sdk'], studio: ['studio', 'client-sdk'], server: ['server', 'jobs', 'db'], jobs: ['jobs', 'db'], db: ['db'] };

describe('the house', () => {
  const files = sourceFiles();

  it('has imports that only point down, and a client-sdk that reaches the server by types alone', () => {
    const upward: string[] = [];
    for (const { file, room, imports } of files) {
      for (const { target, typeOnly } of imports) {
        const allowed = MAY_IMPORT[room].includes(roomOf(target)) || ((room === 'client-sdk' || room === 'studio') && typeOnly && roomOf(target) === 'server');
        if (!allowed) upward.push(`${file} → ${target}${typeOnly ? ' (type)' : ''}`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it('has no import circles', () => {
    const graph = new Map(files.map(({ file, imports }) => [file, imports.map((entry) => entry.target)]));
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...trail.slice(trail.indexOf(file)), file].join(' → '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    assert.deepEqual(circles, []);
  });

  it('keeps SQL in db/', () => {
    const query = /\.(selectFrom|updateTable|insertInto|deleteFrom|with)\(|\bsql`|\bsql</;
    const outside = files.filter(({ room, text }) => room !== 'db' && query.test(text)).map(({ file }) => file);
    assert.deepEqual(outside, []);
  });
});
