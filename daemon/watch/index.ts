// Watched folders: complete media files in → events out; content hashing for identity.
export { FolderWatcher, type FolderWatcherHandlers, type FolderWatcherOptions, type WatchSpec } from './watcher.js';
export { hashFile } from './hash.js';
export { compileGlob, compileFilter, type PathMatcher } from './glob.js';
export { MEDIA_EXTENSIONS, PARTIAL_SUFFIXES, isIgnoredName, isMediaName } from './media.js';
