/**
 * The built-in model parameter rules a model's `use_template` refers to. Dify shows these
 * labels and help texts in its model settings, so they are data and must match upstream's word
 * for word: PARAMETER_RULE_TEMPLATE in pkg/entities/plugin_entities/model_declaration.go
 * (langgenius/dify-plugin-daemon@bdb5642a19009c944b78eca12f3d176801a4a8be). The texts are kept
 * exactly as upstream ships them, including its own wording slips.
 */

export type I18nText = {
  en_US: string;
  zh_Hans?: string;
  ja_JP?: string;
  pt_BR?: string;
};

export type ParameterTemplate = {
  /** Never shown: a rule's label defaults to its own name before the template applies. */
  label: I18nText;
  type: "float" | "int" | "string";
  help: I18nText;
  required: false;
  default?: number;
  min?: number;
  max?: number;
  precision?: number;
  options?: string[];
};

export const PARAMETER_TEMPLATES: Readonly<Record<string, ParameterTemplate>> = {
  temperature: {
    label: { en_US: "Temperature", zh_Hans: "温度", ja_JP: "温度", pt_BR: "Temperatura" },
    type: "float",
    help: {
      en_US:
        "Controls randomness. Lower temperature results in less random completions. As the temperature approaches zero, the model will become deterministic and repetitive. Higher temperature results in more random completions.",
      zh_Hans:
        "温度控制随机性。较低的温度会导致较少的随机完成。随着温度接近零，模型将变得确定性和重复性。较高的温度会导致更多的随机完成。",
      ja_JP:
        "温度はランダム性を制御します。温度が低いほどランダムな完成が少なくなります。温度がゼロに近づくと、モデルは決定論的で繰り返しになります。温度が高いほどランダムな完成が多くなります。",
      pt_BR:
        "A temperatura controla a aleatoriedade. Menores temperaturas resultam em menos conclusões aleatórias. À medida que a temperatura se aproxima de zero, o modelo se tornará determinístico e repetitivo. Temperaturas mais altas resultam em mais conclusões aleatórias.",
    },
    required: false,
    default: 0.0,
    min: 0.0,
    max: 1.0,
    precision: 2,
  },
  top_p: {
    label: { en_US: "Top P", zh_Hans: "Top P", ja_JP: "Top P", pt_BR: "Top P" },
    type: "float",
    help: {
      en_US:
        "Controls diversity via nucleus sampling: 0.5 means half of all likelihood-weighted options are considered.",
      zh_Hans: "通过核心采样控制多样性：0.5表示考虑了一半的所有可能性加权选项。",
      ja_JP: "核サンプリングを通じて多様性を制御します：0.5は、すべての可能性加权オプションの半分を考慮します。",
      pt_BR:
        "Controla a diversidade via amostragem de núcleo: 0.5 significa que metade das opções com maior probabilidade são consideradas.",
    },
    required: false,
    default: 1.0,
    min: 0.0,
    max: 1.0,
    precision: 2,
  },
  top_k: {
    label: { en_US: "Top K", zh_Hans: "Top K" },
    type: "int",
    help: {
      en_US: "Limits the number of tokens to consider for each step by keeping only the k most likely tokens.",
      zh_Hans: "通过只保留每一步中最可能的 k 个标记来限制要考虑的标记数量。",
    },
    required: false,
    default: 50,
    min: 1.0,
    max: 100.0,
    precision: 0,
  },
  presence_penalty: {
    label: { en_US: "Presence Penalty", zh_Hans: "存在惩罚", ja_JP: "存在ペナルティ", pt_BR: "Penalidade de presença" },
    type: "float",
    help: {
      en_US: "Applies a penalty to the log-probability of tokens already in the text.",
      zh_Hans: "对文本中已有的标记的对数概率施加惩罚。",
      ja_JP: "テキストに既に存在するトークンの対数確率にペナルティを適用します。",
      pt_BR: "Aplica uma penalidade à probabilidade logarítmica de tokens já presentes no texto.",
    },
    required: false,
    default: 0.0,
    min: 0.0,
    max: 1.0,
    precision: 2,
  },
  frequency_penalty: {
    label: {
      en_US: "Frequency Penalty",
      zh_Hans: "频率惩罚",
      ja_JP: "頻度ペナルティ",
      pt_BR: "Penalidade de frequência",
    },
    type: "float",
    help: {
      en_US: "Applies a penalty to the log-probability of tokens that appear in the text.",
      zh_Hans: "对文本中出现的标记的对数概率施加惩罚。",
      ja_JP: "テキストに出現するトークンの対数確率にペナルティを適用します。",
      pt_BR: "Aplica uma penalidade à probabilidade logarítmica de tokens que aparecem no texto.",
    },
    required: false,
    default: 0.0,
    min: 0.0,
    max: 1.0,
    precision: 2,
  },
  max_tokens: {
    label: { en_US: "Max Tokens", zh_Hans: "最大标记", ja_JP: "最大トークン", pt_BR: "Máximo de tokens" },
    type: "int",
    help: {
      en_US:
        "Specifies the upper limit on the length of generated results. If the generated results are truncated, you can increase this parameter.",
      zh_Hans: "指定生成结果长度的上限。如果生成结果截断，可以调大该参数。",
      ja_JP:
        "生成結果の長さの上限を指定します。生成結果が切り捨てられた場合は、このパラメータを大きくすることができます。",
      pt_BR:
        "Especifica o limite superior para o comprimento dos resultados gerados. Se os resultados gerados forem truncados, você pode aumentar este parâmetro.",
    },
    required: false,
    default: 64,
    min: 1.0,
    max: 2048.0,
    precision: 0,
  },
  response_format: {
    label: { en_US: "Response Format", zh_Hans: "回复格式", ja_JP: "応答形式", pt_BR: "Formato de resposta" },
    type: "string",
    help: {
      en_US:
        "Set a response format, ensure the output from llm is a valid code block as possible, such as JSON, XML, etc.",
      zh_Hans: "设置一个返回格式，确保llm的输出尽可能是有效的代码块，如JSON、XML等",
      ja_JP: "応答形式を設定します。llmの出力が可能な限り有効なコードブロックであることを確認します。",
      pt_BR:
        "Defina um formato de resposta para garantir que a saída do llm seja um bloco de código válido o mais possível, como JSON, XML, etc.",
    },
    required: false,
    options: ["JSON", "XML"],
  },
  json_schema: {
    label: { en_US: "JSON Schema" },
    type: "string",
    help: {
      en_US: "Set a response json schema will ensure LLM to adhere it.",
      zh_Hans: "设置返回的json schema，llm将按照它返回",
    },
    required: false,
  },
};
