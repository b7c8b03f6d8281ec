/**
 * The smoke test's own plugin, packed at run time from the sources below (nothing is fetched but
 * its one dependency, the Dify plugin SDK, which the daemon installs like any plugin's):
 * - tools `stream` (N text chunks, a pause between them), `storage` (writes and reads back a value
 *   of N bytes through the daemon), `ask_llm` (a streamed LLM call back into Dify), `size` (the
 *   length of a parameter, for large requests);
 * - endpoint `GET /ping` answering `pong` and its setting.
 * Each run packs a distinct package (a run id inside), so each run installs, and cold-starts, anew.
 */
import yazl from "yazl";

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="7" fill="#2563eb"/></svg>\n`;

const tool = (name: string, description: string, parameters: string) => `identity:
  name: ${name}
  author: smoke
  label:
    en_US: ${name}
description:
  human:
    en_US: ${description}
  llm: ${description}
parameters:
${parameters}extra:
  python:
    source: tools/${name}.py
`;

const parameter = (name: string, type: "string" | "number") => `  - name: ${name}
    type: ${type}
    required: false
    form: form
    label:
      en_US: ${name}
    human_description:
      en_US: ${name}
`;

const TOOL_PRELUDE = `from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage
`;

export const SMOKE_PLUGIN_ID = "smoke/daemon-smoke";

/** The plugin's files; `runId` makes the package (and its identifier) unique to this run. */
export function smokePluginFiles(runId: string): Record<string, string> {
  return {
    "manifest.yaml": `version: 0.0.1
type: plugin
author: smoke
name: daemon-smoke
label:
  en_US: Daemon smoke test
description:
  en_US: Exercises every path of a deployed plugin daemon.
icon: icon.svg
created_at: "2025-01-01T00:00:00Z"
resource:
  memory: 1048576
  permission:
    tool:
      enabled: true
    model:
      enabled: true
      llm: true
    endpoint:
      enabled: true
    storage:
      enabled: true
      size: 1048576
plugins:
  tools:
    - provider/smoke.yaml
  endpoints:
    - group/smoke.yaml
meta:
  version: 0.0.1
  arch:
    - amd64
    - arm64
  runner:
    language: python
    version: "3.12"
    entrypoint: main
`,
    "requirements.txt": "dify_plugin==0.10.2\n",
    "smoke-run.txt": `${runId}\n`,
    "_assets/icon.svg": ICON,
    "main.py": `from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=600))

if __name__ == "__main__":
    plugin.run()
`,
    "provider/smoke.yaml": `identity:
  author: smoke
  name: smoke
  label:
    en_US: Smoke
  description:
    en_US: Smoke test tools.
  icon: icon.svg
credentials_for_provider: {}
tools:
  - tools/stream.yaml
  - tools/storage.yaml
  - tools/ask_llm.yaml
  - tools/size.yaml
extra:
  python:
    source: provider/smoke.py
`,
    "provider/smoke.py": `from typing import Any

from dify_plugin import ToolProvider


class SmokeProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict[str, Any]) -> None:
        return None
`,
    "tools/stream.yaml": tool(
      "stream",
      "Streams count text chunks, delay_ms apart.",
      parameter("count", "number") + parameter("delay_ms", "number"),
    ),
    "tools/stream.py": `import time
${TOOL_PRELUDE}

class StreamTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        delay = float(tool_parameters.get("delay_ms") or 0) / 1000.0
        for i in range(int(tool_parameters.get("count") or 1)):
            if i and delay:
                time.sleep(delay)
            yield self.create_text_message(f"chunk-{i}")
`,
    "tools/storage.yaml": tool(
      "storage",
      "Stores size bytes under a key and reads them back.",
      parameter("size", "number"),
    ),
    "tools/storage.py": `import hashlib
${TOOL_PRELUDE}

class StorageTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        size = int(tool_parameters.get("size") or 0)
        value = hashlib.sha256(b"smoke").digest() * (size // 32 + 1)
        value = value[:size]
        self.session.storage.set("smoke-value", value)
        back = self.session.storage.get("smoke-value")
        self.session.storage.delete("smoke-value")
        yield self.create_json_message({"size": len(back), "same": back == value})
`,
    "tools/ask_llm.yaml": tool(
      "ask_llm",
      "Asks a model through Dify (a backwards call) and returns its answer.",
      parameter("provider", "string") + parameter("model", "string"),
    ),
    "tools/ask_llm.py": `from dify_plugin.entities.model.llm import LLMModelConfig
from dify_plugin.entities.model.message import UserPromptMessage
${TOOL_PRELUDE}

class AskLLMTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        config = LLMModelConfig(
            provider=str(tool_parameters.get("provider")),
            model=str(tool_parameters.get("model")),
            mode="chat",
            completion_params={},
        )
        text = ""
        for chunk in self.session.model.llm.invoke(
            model_config=config, prompt_messages=[UserPromptMessage(content="ping")], stream=True
        ):
            content = chunk.delta.message.content
            if isinstance(content, str):
                text += content
        yield self.create_text_message(text)
`,
    "tools/size.yaml": tool("size", "Answers the length of its payload parameter.", parameter("payload", "string")),
    "tools/size.py": `${TOOL_PRELUDE}

class SizeTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        yield self.create_json_message({"length": len(str(tool_parameters.get("payload") or ""))})
`,
    "group/smoke.yaml": `settings:
  - name: word
    type: text-input
    required: false
    default: pong
    label:
      en_US: Word
endpoints:
  - endpoints/ping.yaml
`,
    "endpoints/ping.yaml": `path: "/ping"
method: "GET"
extra:
  python:
    source: endpoints/ping.py
`,
    "endpoints/ping.py": `from collections.abc import Mapping

from werkzeug import Request, Response

from dify_plugin import Endpoint


class PingEndpoint(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        return Response(str(settings.get("word") or "pong"), status=200, content_type="text/plain")
`,
  };
}

/** The files as a .difypkg (a zip), in memory. */
export function packSmokePlugin(runId: string): Promise<Uint8Array> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(smokePluginFiles(runId))) {
    zip.addBuffer(Buffer.from(content, "utf8"), name, { mtime: new Date("2025-01-01T00:00:00Z") });
  }
  zip.end();
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    zip.outputStream.on("data", (d: Buffer) => parts.push(d));
    zip.outputStream.on("end", () => resolve(new Uint8Array(Buffer.concat(parts))));
    zip.outputStream.on("error", reject);
  });
}
