/** The store's typed errors: subclasses of the runtime's, so callers can catch either. */
import { DeviceError, FormatError, OutOfMemoryError } from '../runtime/errors.js';

/** A tier has no room: the disk is full (ENOSPC/EDQUOT), or an entry exceeds the tier's budget. */
export class StorageFullError extends OutOfMemoryError {}

/** A stored entry failed its checksum or is truncated; the store drops it and never returns its bytes. */
export class CorruptEntryError extends FormatError {}

/** A remote tier (Redis) is unreachable, timed out or refused the command. */
export class TierUnavailableError extends DeviceError {}
