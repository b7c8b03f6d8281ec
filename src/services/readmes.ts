/** Plugin READMEs from the package: README.md is en_US, readme/README_<lang>.md the others. */
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PackageIntake } from "./package-intake.js";

export class Readmes {
  constructor(private readonly intake: PackageIntake) {}

  /** Requested language, then en_US, then any translation (upstream's fallback order). */
  async find(
    uniqueIdentifier: PluginUniqueIdentifier,
    language: string,
  ): Promise<{ content: string; language: string } | undefined> {
    const archive = await this.intake.archiveOf(uniqueIdentifier);
    const byLanguage = new Map<string, string>();
    for (const entry of archive.entries) {
      const lang = entry.name === "README.md" ? "en_US" : /^readme\/README_([\w-]+)\.md$/.exec(entry.name)?.[1];
      if (lang) byLanguage.set(lang, Buffer.from(entry.data).toString("utf8"));
    }
    for (const lang of [language, "en_US", ...byLanguage.keys()]) {
      const content = byLanguage.get(lang);
      if (content !== undefined) return { content, language: lang };
    }
    return undefined;
  }
}
