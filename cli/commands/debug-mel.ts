// `wx debug mel`: the log-mel features of a file's first 30-s window, as raw float32 little-endian
// [n_mels, 3000], for checking against reference features (e.g. Hugging Face's).
import fs from 'node:fs';
import os from 'node:os';
import type { Command } from 'commander';
import type { MelExtractor as MelExtractorType } from '../../daemon/audio/index.js';
import { WxError } from '../../daemon/errors.js';

export function registerDebugMel(debug: Command): void {
  debug
    .command('mel <audio>')
    .description('write the log-mel features of the first 30 s of a file (float32 LE [n_mels, 3000])')
    .requiredOption('--out <file>', 'where to write the features')
    .option('--n-mels <n>', '80 or 128 (ignored with --model)', '80')
    .option('--model <dir>', "a model directory: take the settings from its preprocessor_config.json")
    .action(async (audio: string, o: { out: string; nMels: string; model?: string }) => {
      // Loaded on use: the audio module pulls in the native addon and ONNX Runtime (VAD).
      const { MelExtractor, loadAudio } = await import('../../daemon/audio/index.js');
      let mel: MelExtractorType;
      if (o.model) {
        mel = MelExtractor.fromPreprocessorConfig(o.model);
      } else {
        const nMels = Number(o.nMels);
        if (nMels !== 80 && nMels !== 128) throw new WxError('cli.bad_option', `--n-mels must be 80 or 128, not ${o.nMels}`);
        mel = new MelExtractor({ nMels });
      }
      const samples = await loadAudio(audio);
      const features = mel.window(samples, 0);
      if (os.endianness() !== 'LE') throw new WxError('cli.unsupported', 'wx debug mel writes little-endian floats and this machine is big-endian');
      fs.writeFileSync(o.out, new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
      process.stdout.write(`${o.out}: float32 LE [${mel.nMels}, ${mel.windowFrames}] from ${(samples.length / 16000).toFixed(2)} s of audio\n`);
    });
}
