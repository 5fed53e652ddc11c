// `wx models …`: list, pull from the Hugging Face Hub, remove, choose the default, import a local
// checkpoint. `ls`, `pull` and `default` go through the daemon (started if needed), so a pull
// shows up in its log, and a new default becomes its warm model at once; `--no-daemon` runs
// them in this process (the logic lives in daemon/models, which the daemon calls too).
import { InvalidArgumentError, type Command } from 'commander';
import type cliProgressTypes from 'cli-progress';
import { WxError, describeError } from '../../daemon/errors.js';
import { WxClient } from '../../daemon/ipc/client.js';
import { ErrorCode, type ModelsList, type ParamsOf } from '../../daemon/ipc/protocol.js';
import { RpcRemoteError } from '../../daemon/ipc/transport.js';
import { CliExit, exitCodeFor } from '../daemon-client.js';
import { wxHome } from '../../daemon/paths.js';
import type { ImportPrecision } from '../../daemon/engine/import.js';
import type { PullProgress } from '../../daemon/models/registry.js';
import { EXIT } from '../exit.js';

// The model code (and the converter behind it) loads only when a models command runs, so the
// other commands start without it.
const registry = () => import('../../daemon/models/registry.js');

function parsePrecision(v: string): ImportPrecision {
  if (v === 'int8' || v === 'fp32' || v === 'both') return v;
  throw new InvalidArgumentError('expected int8, fp32 or both.');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

function formatEta(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** Renders pull progress: a bar on a terminal, a line every few seconds otherwise. */
async function progressRenderer(stream: NodeJS.WriteStream): Promise<{ update(p: PullProgress): void; stop(): void }> {
  if (stream.isTTY) {
    const cliProgress = (await import('cli-progress')).default;
    let bar: cliProgressTypes.SingleBar | undefined;
    let phase = '';
    return {
      update(p) {
        if (p.phase === 'download') {
          if (!bar) {
            bar = new cliProgress.SingleBar(
              { format: '{phase} |{bar}| {percentage}% {done}/{all} {speed} ETA {eta2} {file}', hideCursor: true, stream, fps: 8 },
              cliProgress.Presets.shades_classic,
            );
          }
          const payload = { phase: 'download', done: formatBytes(p.bytesDone), all: formatBytes(p.bytesTotal), speed: `${formatBytes(p.speedBps)}/s`, eta2: formatEta(p.etaSeconds), file: p.file };
          if (phase !== 'download') bar.start(Math.max(1, p.bytesTotal), p.bytesDone, payload);
          bar.setTotal(Math.max(1, p.bytesTotal));
          bar.update(p.bytesDone, payload);
        } else if (p.phase === 'import') {
          if (phase !== 'import') {
            bar?.stop();
            bar = new cliProgress.SingleBar({ format: 'convert  |{bar}| {percentage}% {step}', hideCursor: true, stream, fps: 8 }, cliProgress.Presets.shades_classic);
            bar.start(1000, 0, { step: p.step });
          }
          bar!.update(Math.round(p.fraction * 1000), { step: p.step });
        }
        phase = p.phase;
      },
      stop() {
        bar?.stop();
      },
    };
  }
  let lastLine = -Infinity;
  let lastStep = '';
  return {
    update(p) {
      const now = performance.now();
      if (p.phase === 'download' && (now - lastLine > 5000 || p.bytesDone === p.bytesTotal) && p.bytesTotal > 0) {
        lastLine = now;
        const pct = ((100 * p.bytesDone) / p.bytesTotal).toFixed(0);
        stream.write(`download ${pct}% ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} ${formatBytes(p.speedBps)}/s ETA ${formatEta(p.etaSeconds)}\n`);
      } else if (p.phase === 'import' && p.step !== lastStep) {
        lastStep = p.step;
        stream.write(`convert ${(p.fraction * 100).toFixed(0)}% ${p.step}\n`);
      }
    },
    stop() {},
  };
}

/** Runs `fn` against the daemon (started if needed). Errors are printed here with a hint about
 *  --no-daemon when the daemon cannot be reached; the command then ends with their exit code. */
async function viaDaemon<T>(fn: (client: WxClient) => Promise<T>): Promise<T> {
  let client: WxClient;
  try {
    client = await WxClient.connect({ home: wxHome(), autostart: true });
  } catch (err) {
    process.stderr.write(`wx: ${describeError(err)}\n(use --no-daemon to run this in this process)\n`);
    throw new CliExit(exitCodeFor(err));
  }
  try {
    if (client.started) process.stderr.write(`wx: started the daemon (pid ${client.server.pid})\n`);
    return await fn(client);
  } catch (err) {
    if (err instanceof RpcRemoteError && err.rpcCode === ErrorCode.cancelled) throw new CliExit(EXIT.interrupted);
    if (err instanceof CliExit) throw err;
    process.stderr.write(`wx: ${describeError(err)}\n`);
    throw new CliExit(exitCodeFor(err));
  } finally {
    await client.close();
  }
}

/** An action whose CliExit (message already printed) becomes the exit code. */
function endsWithExitCode<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (!(err instanceof CliExit)) throw err;
      process.exitCode = err.exitCode;
    }
  };
}

/** `models.ls` computed in this process (the daemon replies with the same function). */
async function listInProcess(): Promise<ModelsList> {
  return (await registry()).modelsOverview(wxHome());
}

export function registerModels(program: Command): Command {
  const models = program.command('models').description('installed models: list, pull from the Hugging Face Hub, remove, default, import');

  models
    .command('ls')
    .description('installed models (name, source, precisions, size; * = default), then the known aliases')
    .option('--json', 'machine-readable output')
    .option('--no-daemon', 'read the models directory in this process instead of asking the daemon')
    .action(endsWithExitCode(async (o: { json?: boolean; daemon: boolean }) => {
      const list = o.daemon ? await viaDaemon((c) => c.call('models.ls', undefined)) : await listInProcess();
      if (o.json) {
        const out = {
          installed: list.installed.map((m) => ({
            name: m.name,
            dir: m.dir,
            source: m.source,
            revision: m.revision ?? null,
            precisions: m.precisions,
            sizeBytes: m.sizeBytes,
            default: m.isDefault,
            importedAt: m.importedAt,
          })),
          default: list.default,
          downloads: list.downloads,
          aliases: list.aliases,
        };
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      const def = list.default;
      const defaultName = list.installed.find((m) => m.isDefault)?.name;
      if (list.installed.length === 0) process.stdout.write('no models installed (wx models pull tiny.en)\n');
      else {
        const rows = list.installed.map((m) => [
          `${m.isDefault ? '*' : ' '} ${m.name}`,
          (m.source ?? '') + (m.revision ? `@${m.revision.slice(0, 10)}` : ''),
          m.precisions.join('+'),
          formatBytes(m.sizeBytes ?? 0),
        ]);
        const header = ['  NAME', 'SOURCE', 'PRECISION', 'SIZE'];
        const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        for (const r of [header, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
      }
      if (def && !defaultName) process.stdout.write(`default (${def.from}): ${def.model}\n`);
      for (const d of list.downloads) {
        process.stdout.write(`interrupted download ${d.key} (${formatBytes(d.bytes)} in ${d.dir}): the same wx models pull resumes it\n`);
      }
      process.stdout.write('\nknown models (wx models pull <name>):\n');
      for (const [alias, repo] of Object.entries(list.aliases)) process.stdout.write(`  ${alias.padEnd(18)} ${repo}\n`);
    }));

  models
    .command('pull <model>')
    .description('download a model (alias or Hub repo id) from the Hugging Face Hub, verify and install it (honours HF_ENDPOINT, HF_TOKEN)')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--precision <p>', 'int8, fp32 or both', parsePrecision, 'int8')
    .option('--name <name>', 'installed name (default: the alias or the repo name)')
    .option('--force', 'download and convert again even if installed')
    .option('--no-daemon', 'download and convert in this process instead of the daemon')
    .action(endsWithExitCode(async (model: string, o: { revision: string; precision: ImportPrecision; name?: string; force?: boolean; daemon: boolean }) => {
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const render = await progressRenderer(process.stderr);
      const interrupted = () => {
        render.stop();
        process.stderr.write('wx: interrupted; the downloaded part is kept: run the same command to resume\n');
        process.exitCode = EXIT.interrupted;
      };
      try {
        let r: { name: string; repo: string; dir: string; revision: string | null; precisions: string[]; alreadyInstalled: boolean };
        if (o.daemon) {
          const params: ParamsOf<'models.pull'> = { source: model, revision: o.revision, precision: o.precision, force: !!o.force };
          if (o.name) params.name = o.name;
          // The daemon may have been started from another environment: this command's Hub
          // settings are the ones the user means.
          if (process.env.HF_ENDPOINT?.trim()) params.endpoint = process.env.HF_ENDPOINT.trim();
          if (process.env.HF_TOKEN?.trim()) params.token = process.env.HF_TOKEN.trim();
          try {
            r = await viaDaemon(async (client) => {
              const off = client.on('models.progress', (p) => render.update(p));
              try {
                return await client.call('models.pull', params, abort.signal);
              } finally {
                off();
              }
            });
          } catch (err) {
            if (err instanceof CliExit && err.exitCode === EXIT.interrupted) return interrupted();
            throw err;
          }
        } else {
          const { pullModel } = await registry();
          try {
            const p = await pullModel(model, {
              home: wxHome(),
              revision: o.revision,
              precision: o.precision,
              ...(o.name ? { name: o.name } : {}),
              force: !!o.force,
              signal: abort.signal,
              onProgress: (pr) => render.update(pr),
            });
            r = { name: p.name, repo: p.repo, dir: p.dir, revision: p.manifest.revision ?? null, precisions: p.manifest.precisions, alreadyInstalled: p.alreadyInstalled };
          } catch (err) {
            if (err instanceof WxError && err.code === 'hub.aborted') return interrupted();
            throw err;
          }
        }
        render.stop();
        if (r.alreadyInstalled) process.stdout.write(`${r.name} is installed and up to date (${r.repo}@${r.revision ?? '?'}); --force fetches it again\n`);
        else process.stdout.write(`installed ${r.name} from ${r.repo}@${r.revision ?? o.revision} (${r.precisions.join('+')}) in ${r.dir}\n`);
      } finally {
        render.stop();
        process.off('SIGINT', onSigint);
      }
    }));

  models
    .command('rm <name>')
    .description('remove an installed model')
    .action(async (name: string) => {
      const { removeModel } = await registry();
      const r = removeModel(wxHome(), name);
      process.stdout.write(`removed ${r.name}${r.wasDefault ? ' (it was the default; none is set now)' : ''}\n`);
    });

  models
    .command('default [name]')
    .description('show or set the default model (WX_MODEL overrides it); the daemon switches its warm model to it')
    .option('--no-daemon', 'only read or write config.json (a running daemon keeps its model until restarted)')
    .action(endsWithExitCode(async (name: string | undefined, o: { daemon: boolean }) => {
      const home = wxHome();
      if (name === undefined) {
        let def: { model: string; from: string } | undefined;
        if (o.daemon) {
          def = await viaDaemon(async (c) => {
            try {
              const r = await c.call('models.default', undefined);
              return { model: r.name, from: r.from };
            } catch (err) {
              if (err instanceof RpcRemoteError && err.rpcCode === ErrorCode.notFound) return undefined;
              throw err;
            }
          });
        } else def = (await registry()).getDefaultModel(home);
        process.stdout.write(def ? `${def.model} (from ${def.from})\n` : 'no default model (wx models default <name>)\n');
        return;
      }
      if (o.daemon) {
        const r = await viaDaemon((c) => c.call('models.default', { name }));
        process.stdout.write(`default model: ${r.name} (loaded in the daemon in ${r.load_ms ?? 0} ms)\n`);
        if (r.from === 'WX_MODEL') process.stderr.write('wx: note: WX_MODEL in the daemon\'s environment overrides config.json at its next start\n');
      } else {
        const m = await (await registry()).setDefaultModel(home, name);
        process.stdout.write(`default model: ${m.name}\n`);
      }
      if (process.env.WX_MODEL) process.stderr.write(`wx: note: WX_MODEL=${process.env.WX_MODEL} overrides it in this environment\n`);
    }));

  models
    .command('import <dir>')
    .description('convert a Hugging Face Whisper directory (config.json, model.safetensors, tokenizer) and install it')
    .option('--name <name>', 'installed name (default: the directory name)')
    .option('--precision <p>', 'int8, fp32 or both', parsePrecision, 'int8')
    .option('--force', 'replace an installed model of the same name')
    .action(async (dir: string, o: { name?: string; precision: ImportPrecision; force?: boolean }) => {
      const render = await progressRenderer(process.stderr);
      try {
        const { importModel } = await import('../../daemon/engine/import.js');
        const m = await importModel(dir, { home: wxHome(), precision: o.precision, force: !!o.force, ...(o.name ? { name: o.name } : {}), onProgress: (p) => render.update({ phase: 'import', ...p }) });
        render.stop();
        process.stdout.write(`installed ${m.name} (${m.manifest.precisions.join('+')}) in ${m.dir}\n`);
      } finally {
        render.stop();
      }
    });

  return models;
}
