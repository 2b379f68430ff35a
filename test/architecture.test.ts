import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The import directions of lib/ (docs/architecture.md): a role folder imports only what sits below it,
// and no two folders import each other, even for types.

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));

/** A module of lib/: its folder (the role) and what it imports, as lib-relative paths. */
interface Module {
  file: string;
  imports: string[];
}

/** `import … from`, `export … from`, `import '…'` and `import('…')`, type-only ones included. */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return listFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function parseModules(): Module[] {
  return listFiles(LIB).map((full) => {
    const source = readFileSync(full, 'utf8');
    const imports = [...source.matchAll(IMPORT)].map((match) => {
      const target = path.resolve(path.dirname(full), match[1]!).replace(/\.js$/, '.ts');
      return path.relative(LIB, target);
    });
    return { file: path.relative(LIB, full), imports };
  });
}

/** The role of a lib-relative path: its top folder, or the root file itself (`errors.ts`, `steward.ts`). */
function roleOf(file: string): string {
  const [top] = file.split(path.sep);
  return file.includes(path.sep) ? top! : file;
}

const BASE = ['errors.ts', 'common'];
/** The steward's option groups: `options.ts` composes the other two. */
const OPTION_FILES = ['options.ts', 'control-options.ts', 'recycle-options.ts'];
const CONFIGURED = [...BASE, ...OPTION_FILES];

/**
 * What each layer may import besides itself (the table of docs/architecture.md). The entries over them
 * (`throng/`, `cli/`, the files of lib/ that the package exports) compose everything and are not listed.
 */
const ALLOWED: Record<string, readonly string[]> = {
  'errors.ts': [],
  // The bottom: shared types, stores and tools, over nothing but the error catalogue.
  common: ['errors.ts'],
  'options.ts': [...BASE, 'control-options.ts', 'recycle-options.ts'],
  'control-options.ts': BASE,
  'recycle-options.ts': BASE,
  // Each role registers its own collectors into metrics/; metrics/ reads no role's state.
  metrics: CONFIGURED,
  // The generic service host knows services, not the listeners built on it (leases are injected).
  services: [...CONFIGURED, 'metrics'],
  listeners: [...CONFIGURED, 'metrics', 'services'],
  // Workers serve HTTP only: nothing of the primary, the services or the listeners.
  worker: [...CONFIGURED, 'metrics'],
  primary: [...CONFIGURED, 'metrics', 'services', 'listeners', 'worker'],
  sibling: [...CONFIGURED, 'metrics', 'services', 'listeners'],
  standalone: [...CONFIGURED, 'metrics', 'services', 'listeners', 'primary'],
};

/** Whether `from` must not import `to`: a listed layer importing anything not listed for it. */
function forbidden(from: string, to: string): boolean {
  const allowed = ALLOWED[from];
  return allowed !== undefined && !allowed.includes(to);
}

function forbiddenImports(modules: readonly Module[]): string[] {
  const found: string[] = [];
  for (const { file, imports } of modules) {
    const from = roleOf(file);
    for (const target of imports) {
      const to = roleOf(target);
      if (to !== from && forbidden(from, to))
        found.push(`${file} → ${target} (${from}/ must not import ${to})`);
    }
  }
  return found;
}

/** Every cycle of the graph of roles, as `a → b → a`, found by a depth-first search. */
function roleCycles(modules: readonly Module[]): string[] {
  const edges = new Map<string, Set<string>>();
  for (const { file, imports } of modules) {
    const from = roleOf(file);
    for (const target of imports) {
      const to = roleOf(target);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)!.add(to);
    }
  }
  const cycles = new Set<string>();
  const visit = (role: string, trail: string[]) => {
    const at = trail.indexOf(role);
    if (at !== -1) {
      const loop = trail.slice(at);
      // One spelling per cycle: rotated to start at its smallest role.
      const start = loop.indexOf([...loop].sort()[0]!);
      const rotated = [...loop.slice(start), ...loop.slice(0, start)];
      cycles.add([...rotated, rotated[0]].join(' → '));
      return;
    }
    for (const next of edges.get(role) ?? []) visit(next, [...trail, role]);
  };
  for (const role of edges.keys()) visit(role, []);
  return [...cycles];
}

/** Every cycle between two files of lib/ (a file imports one that imports it back, directly or not). */
function fileCycles(modules: readonly Module[]): string[] {
  const edges = new Map(modules.map((module) => [module.file, module.imports]));
  const cycles = new Set<string>();
  const done = new Set<string>();
  const visit = (file: string, trail: string[]) => {
    const at = trail.indexOf(file);
    if (at !== -1) {
      cycles.add([...trail.slice(at), file].join(' → '));
      return;
    }
    if (done.has(file)) return;
    for (const next of edges.get(file) ?? []) visit(next, [...trail, file]);
    done.add(file);
  };
  for (const file of edges.keys()) visit(file, []);
  return [...cycles];
}

const modules = parseModules();

test('the import parser reads every lib/ file and resolves its relative imports to lib/ files', () => {
  assert.ok(modules.length > 50, `only ${modules.length} files under lib/`);
  const files = new Set(modules.map((module) => module.file));
  const agent = modules.find((module) => module.file === path.join('worker', 'agent.ts'));
  assert.ok(agent?.imports.includes(path.join('common', 'ipc.ts')), 'worker/agent.ts imports common/ipc.ts');
  const unresolved = modules.flatMap(({ file, imports }) =>
    imports.filter((target) => !files.has(target)).map((target) => `${file} → ${target}`),
  );
  assert.deepEqual(unresolved, [], 'every relative import names a file of lib/');
});

test('the checks find a forbidden import and a cycle when there is one', () => {
  const planted: Module[] = [
    { file: path.join('services', 'a.ts'), imports: [path.join('listeners', 'b.ts')] },
    { file: path.join('listeners', 'b.ts'), imports: [path.join('services', 'a.ts')] },
    { file: path.join('common', 'c.ts'), imports: [path.join('metrics', 'd.ts')] },
  ];
  assert.equal(forbiddenImports(planted).length, 2);
  assert.deepEqual(roleCycles(planted), ['listeners → services → listeners']);
  assert.equal(fileCycles(planted).length, 1);
});

test('no role folder imports a folder it must not know', () => {
  assert.deepEqual(forbiddenImports(modules), []);
});

test('no cycle between role folders (type-only imports count)', () => {
  assert.deepEqual(roleCycles(modules), []);
});

test('no cycle between files of lib/', () => {
  assert.deepEqual(fileCycles(modules), []);
});
