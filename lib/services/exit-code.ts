/**
 * Exit code of a services process whose module cannot be loaded (EX_CONFIG from sysexits.h). In a module of
 * its own so a primary that hosts no services reads it without loading the module loader and its option specs.
 */
export const EXIT_SERVICES_MODULE = 78;
