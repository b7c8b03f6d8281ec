/**
 * Dispatch paths and the (access type, action) pair each one sends to the plugin
 * (upstream internal/server/http_server.go pluginDispatchGroup and controllers/*.gen.go, langgenius/dify-plugin-daemon@bdb5642a).
 */
export interface PluginAction {
  type: string;
  action: string;
}

const table: Record<string, [string, string]> = {
  "tool/invoke": ["tool", "invoke_tool"],
  "tool/validate_credentials": ["tool", "validate_tool_credentials"],
  "tool/get_runtime_parameters": ["tool", "get_tool_runtime_parameters"],
  "llm/invoke": ["model", "invoke_llm"],
  "llm/num_tokens": ["model", "get_llm_num_tokens"],
  "text_embedding/invoke": ["model", "invoke_text_embedding"],
  "multimodal_embedding/invoke": ["model", "invoke_multimodal_embedding"],
  "text_embedding/num_tokens": ["model", "get_text_embedding_num_tokens"],
  "rerank/invoke": ["model", "invoke_rerank"],
  "multimodal_rerank/invoke": ["model", "invoke_multimodal_rerank"],
  "tts/invoke": ["model", "invoke_tts"],
  "tts/model/voices": ["model", "get_tts_model_voices"],
  "speech2text/invoke": ["model", "invoke_speech2text"],
  "moderation/invoke": ["model", "invoke_moderation"],
  "model/validate_provider_credentials": ["model", "validate_provider_credentials"],
  "model/validate_model_credentials": ["model", "validate_model_credentials"],
  "model/schema": ["model", "get_ai_model_schemas"],
  "model/polling/start": ["model", "start_polling"],
  "model/polling/check": ["model", "check_polling"],
  "agent_strategy/invoke": ["agent_strategy", "invoke_agent_strategy"],
  "oauth/get_authorization_url": ["oauth", "get_authorization_url"],
  "oauth/get_credentials": ["oauth", "get_credentials"],
  "oauth/refresh_credentials": ["oauth", "refresh_credentials"],
  "dynamic_select/fetch_parameter_options": ["dynamic_parameter", "fetch_parameter_options"],
  "datasource/validate_credentials": ["datasource", "validate_datasource_credentials"],
  "datasource/get_website_crawl": ["datasource", "invoke_website_datasource_get_crawl"],
  "datasource/get_online_document_pages": ["datasource", "invoke_online_document_datasource_get_pages"],
  "datasource/get_online_document_page_content": ["datasource", "invoke_online_document_datasource_get_page_content"],
  "datasource/online_drive_browse_files": ["datasource", "invoke_online_drive_browse_files"],
  "datasource/online_drive_download_file": ["datasource", "invoke_online_drive_download_file"],
  "trigger/invoke_event": ["trigger", "invoke_trigger_event"],
  "trigger/validate_credentials": ["trigger", "validate_trigger_credentials"],
  "trigger/dispatch_event": ["trigger", "dispatch_trigger_event"],
  "trigger/subscribe": ["trigger", "subscribe_trigger"],
  "trigger/unsubscribe": ["trigger", "unsubscribe_trigger"],
  "trigger/refresh": ["trigger", "refresh_trigger"],
};

export const dispatchPaths = Object.keys(table);

export function actionFor(path: string): PluginAction | undefined {
  const entry = table[path];
  return entry ? { type: entry[0], action: entry[1] } : undefined;
}
