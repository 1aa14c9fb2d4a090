"""Class descriptions, the text that stands in for images of a class (the `describe` stages).

Backends: an LLM (the OpenAI API or any OpenAI-compatible server) with the papers' prompts and
an append-only answer cache; a published CBD descriptor file or the user's own file; offline
sentences from the class x attribute matrix. Each returns the same table (`DESCRIPTION_COLUMNS`).
`run`: the stages' entry, `describe_set`. `settings`: the `describe` params section.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "AnswerCache": "answer_cache", "describe_from_attributes": "attributes",
    "UnmatchedClasses": "imported", "describe_from_cbd": "imported",
    "describe_from_file": "imported", "LLMError": "llm", "ask_all": "llm",
    "descriptions_table": "llm", "estimate": "llm", "plan_requests": "llm",
    "PromptTemplate": "prompts", "load_prompt": "prompts", "UnansweredRequests": "run",
    "default_cache": "run", "describe_set": "run", "API_KEY_VARIABLE": "settings",
    "Describe": "settings", "LLMSettings": "settings", "DESCRIPTION_COLUMNS": "table",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
