// Streaming dictation (issue 8): sessions, stabilisation, post-processing, the daemon service.
export { DictationSession, CADENCE_MS, DICTATION_MODES, type DictationMode, type DictationPartial, type SessionResult, type UtteranceDecoder } from './session.js';
export { LocalAgreement, splitWords, tailStart, wordKey } from './agreement.js';
export { postprocess, removeFillers, applyReplacements, FILLER_WORDS, type PostprocessOptions } from './postprocess.js';
export { WavWriter, floatToS16, s16ToFloat } from './wav-writer.js';
export { decodeUtterance, engineWindowModel, type WindowModel, type UtteranceRequest, type UtteranceHypothesis } from './window.js';
export { DictationManager } from './manager.js';
export { openMicCapture, MIC_LINUX_HINT, type AudioCapture } from './capture.js';
