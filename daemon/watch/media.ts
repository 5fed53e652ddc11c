// Which files in a watched folder are recordings, and which are still being downloaded.
import path from 'node:path';

/** Audio and video containers wx transcribes (video: its audio track, decoded by ffmpeg).
 *  `.ts` (MPEG transport stream) is left out: in most folders it is TypeScript. */
export const MEDIA_EXTENSIONS: ReadonlySet<string> = new Set([
  // audio
  'wav', 'wave', 'mp3', 'm4a', 'm4b', 'aac', 'flac', 'ogg', 'oga', 'opus', 'wma', 'aif', 'aiff', 'aifc',
  'caf', 'amr', 'awb', 'mka', 'weba', 'spx', 'ac3', 'qta',
  // video
  'mp4', 'm4v', 'mov', 'mkv', 'webm', 'avi', 'wmv', 'flv', 'mpg', 'mpeg', 'mts', 'm2ts', '3gp', '3g2', 'ogv',
]);

/** Names browsers and download tools give a file (or, Safari, a bundle folder) until it is complete. */
export const PARTIAL_SUFFIXES: readonly string[] = ['.part', '.partial', '.crdownload', '.download', '.tmp', '.temp', '.opdownload', '.!ut'];

/** A name that must never be taken: hidden (dotfiles, `.DS_Store`, rsync's `.name.XXXX`) or partial. */
export function isIgnoredName(name: string): boolean {
  if (name.startsWith('.') || name.startsWith('~$')) return true;
  const lower = name.toLowerCase();
  return PARTIAL_SUFFIXES.some((s) => lower.endsWith(s));
}

export function isMediaName(name: string): boolean {
  const ext = path.extname(name).slice(1).toLowerCase();
  return MEDIA_EXTENSIONS.has(ext) && !isIgnoredName(name);
}
