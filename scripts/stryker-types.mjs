// A Stryker checker (stryker.config.mjs, `checkers: ['mutant-types']`): a mutant that does not type-check is a compile
// error, left out of the score and never run, as with @stryker-mutator/typescript-checker, at a fraction of its cost.
//
// Why not that checker: it rebuilds the project after each mutant, and it checks two mutants together only when they
// sit in files that do not depend on each other. An area mutates one file or a few that import each other, so every
// mutant was a rebuild of its own: 1 to 2 s each on this project, about 45 minutes for the 1,300 mutants of
// src/shard.ts, during which Stryker keeps one of its two processes for the checker (TESTING.md, "2026-11-27, third
// session").
//
// What this one does for a mutant: the mutated file's own syntax and type errors, from a language service that keeps
// every other file checked; then the declarations the mutated file exports (its .d.ts). Another file can only see a
// mutant through those: when they are the unmutated file's, no other file can gain an error; when they differ (a
// mutant that changes an exported function's inferred type, say), every file that imports the mutated one, directly
// or through others, is checked again, as the TypeScript checker would. `scripts/check-mutant-types.mjs` compares its verdicts with the compile errors of
// the committed incremental records.
import { relative, resolve } from 'node:path'
import ts from 'typescript'
import { CheckStatus } from '@stryker-mutator/api/check'
import { PluginKind, commonTokens, declareClassPlugin, tokens } from '@stryker-mutator/api/plugin'

/**
 * The type checker of mutants, usable without Stryker: `new MutantTypes(tsconfigPath)`, then `verdict(...)` per
 * mutant. Positions are Stryker's: 0-based lines and columns.
 */
export class MutantTypes {
  /** @param {string} tsconfigPath the project whose files are checked (its `include`) */
  constructor(tsconfigPath) {
    const parsed = ts.getParsedCommandLineOfConfigFile(resolve(tsconfigPath), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      },
    })
    if (parsed === undefined) throw new Error(`cannot read ${tsconfigPath}`)
    this.files = parsed.fileNames.map((f) => resolve(f))
    this.fileSet = new Set(this.files)
    /** @type {Map<string, { text: string, version: number }>} file -> its mutated text */
    this.overrides = new Map()
    this.versions = new Map()
    this.originals = new Map()
    this.declarations = new Map()
    // As @stryker-mutator/typescript-checker: a mutant that leaves a name unused or code unreachable still compiles.
    const options = {
      ...parsed.options,
      allowUnreachableCode: true,
      noUnusedLocals: false,
      noUnusedParameters: false,
      noEmit: false,
      declaration: true,
      emitDeclarationOnly: true,
      incremental: false,
      composite: false,
    }
    delete options.tsBuildInfoFile
    const host = {
      getScriptFileNames: () => this.files,
      getScriptVersion: (f) => String(this.versions.get(resolve(f)) ?? 0),
      getScriptSnapshot: (f) => {
        const text = this.overrides.get(resolve(f))?.text ?? ts.sys.readFile(f)
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text)
      },
      getCurrentDirectory: () => process.cwd(),
      getCompilationSettings: () => options,
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: ts.sys.fileExists,
      readFile: ts.sys.readFile,
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
    }
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry())
  }

  /** The project's errors without any mutant (a checker refuses to start on a project that does not compile). */
  projectErrors() {
    return this.files.flatMap((f) => this.#errorsOf(f))
  }

  /** @param {string} file */
  #errorsOf(file) {
    return [...this.service.getSyntacticDiagnostics(file), ...this.service.getSemanticDiagnostics(file)]
  }

  /** @param {string} file */
  #declarationsOf(file) {
    const out = this.service.getEmitOutput(file, true, true)
    return out.outputFiles.map((o) => o.text).join('\n')
  }

  /**
   * The files of the project that import `file`, directly or through others: the only ones whose types its
   * declarations reach.
   * @param {string} file
   */
  #dependentsOf(file) {
    if (this.importers === undefined) {
      /** @type {Map<string, Set<string>>} file -> the files that import it */
      this.importers = new Map()
      const options = this.service.getProgram()?.getCompilerOptions() ?? {}
      for (const from of this.files) {
        for (const { fileName } of ts.preProcessFile(this.#original(from), true, true).importedFiles) {
          const target = ts.resolveModuleName(fileName, from, options, ts.sys).resolvedModule?.resolvedFileName
          if (target === undefined || !this.fileSet.has(resolve(target))) continue
          const set = this.importers.get(resolve(target)) ?? new Set()
          set.add(from)
          this.importers.set(resolve(target), set)
        }
      }
    }
    const found = new Set()
    const visit = (f) => {
      for (const importer of this.importers.get(f) ?? []) {
        if (found.has(importer) || importer === file) continue
        found.add(importer)
        visit(importer)
      }
    }
    visit(file)
    return [...found]
  }

  /** @param {string} file */
  #original(file) {
    let text = this.originals.get(file)
    if (text === undefined) {
      text = ts.sys.readFile(file) ?? ''
      this.originals.set(file, text)
    }
    return text
  }

  /** @param {string} file @param {string | undefined} text the mutated text, or undefined for the file on disk */
  #set(file, text) {
    if (text === undefined) this.overrides.delete(file)
    else this.overrides.set(file, { text })
    this.versions.set(file, (this.versions.get(file) ?? 0) + 1)
  }

  /**
   * The errors a mutant brings: none when it type-checks.
   * @param {{ fileName: string, replacement: string, location: { start: { line: number, column: number }, end: { line: number, column: number } } }} mutant
   * @returns {readonly ts.Diagnostic[]}
   */
  errors(mutant) {
    const file = resolve(mutant.fileName)
    if (!this.fileSet.has(file)) return []
    const original = this.#original(file)
    let declared = this.declarations.get(file)
    if (declared === undefined) {
      // The unmutated file's declarations, emitted as a mutant's are: after its own diagnostics, in a new program.
      // TypeScript writes a union's members in the order its checker first met them, so declarations emitted without
      // that check first came out with unions in another order: they differed from every mutant's, and every mutant
      // that type-checked had all the files that depend on its own checked too (0.65 s each for
      // actors/shard-supervisor.ts, none of them ever finding an error; TESTING.md, "2026-11-27, fifth session").
      this.#set(file, original)
      this.#errorsOf(file)
      declared = this.#declarationsOf(file)
      this.#set(file, undefined)
      this.declarations.set(file, declared)
    }
    const lines = ts.createSourceFile(file, original, ts.ScriptTarget.Latest, false)
    const start = lines.getPositionOfLineAndCharacter(mutant.location.start.line, mutant.location.start.column)
    const end = lines.getPositionOfLineAndCharacter(mutant.location.end.line, mutant.location.end.column)
    this.#set(file, original.slice(0, start) + mutant.replacement + original.slice(end))
    try {
      const own = this.#errorsOf(file)
      if (own.length > 0) return own
      if (this.#declarationsOf(file) === declared) return []
      return this.#dependentsOf(file).flatMap((f) => this.#errorsOf(f))
    } finally {
      this.#set(file, undefined)
    }
  }
}

/** Diagnostics as the TypeScript checker words them: `file(line,col): error TSn: message`. */
export const describe = (diagnostics) =>
  ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  })

class MutantTypesChecker {
  static inject = tokens(commonTokens.logger, commonTokens.options)
  /** @param {import('@stryker-mutator/api/logging').Logger} log @param {import('@stryker-mutator/api/core').StrykerOptions} options */
  constructor(log, options) {
    this.log = log
    this.tsconfig = typeof options.tsconfigFile === 'string' ? options.tsconfigFile : 'tsconfig.json'
  }

  async init() {
    this.types = new MutantTypes(this.tsconfig)
    const errors = this.types.projectErrors()
    if (errors.length > 0) throw new Error(`the project does not type-check (${this.tsconfig}):\n${describe(errors)}`)
    this.log.info(`mutant-types: ${this.types.files.length} files of ${relative(process.cwd(), resolve(this.tsconfig))} type-check`)
  }

  /** @param {import('@stryker-mutator/api/core').Mutant[]} mutants */
  async check(mutants) {
    /** @type {Record<string, import('@stryker-mutator/api/check').CheckResult>} */
    const results = {}
    for (const mutant of mutants) {
      const errors = this.types.errors(mutant)
      results[mutant.id] = errors.length === 0 ? { status: CheckStatus.Passed } : { status: CheckStatus.CompileError, reason: describe(errors) }
    }
    return results
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.Checker, 'mutant-types', MutantTypesChecker)]
