/**
 * Imported by a step process before its code location: job bodies are then
 * recorded on first use, so the process builds only the job it runs.
 */
import { deferJobBodies } from '../definitions.ts';

deferJobBodies();
