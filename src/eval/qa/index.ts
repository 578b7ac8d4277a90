export { QA_KINDS, checkQaRecord, readQaSet, type QaKind, type QaRecord } from './dataset.js';
export { QA_PREFIX, QA_PROMPT_VERSION, joinPrompt, promptLength, promptText, splitPrompt, tokenizePrompt, type QaPromptText,
  type QaPromptTokens } from './prompt.js';
export { MAX_ANSWER_TOKENS, answerFullPrefill, answerFused, argmax, type Answer, type FusedAnswer } from './answer.js';
export { QA_FIXED_METHODS, QA_RATIOS, QA_RATIO_METHODS, qaEval, type QaEvalOptions, type QaEvalRow, type QaPrediction } from './eval.js';
