"""Class descriptions, the text that stands in for images of a class (the `describe` stage).

Backends: an LLM (the OpenAI API or any OpenAI-compatible server) with the papers' prompts and
an append-only answer cache; a published CBD descriptor file or the user's own file; offline
sentences from the class x attribute matrix. Each returns the same table (`DESCRIPTION_COLUMNS`).
"""

from pipeline.describe.answer_cache import AnswerCache
from pipeline.describe.attributes import describe_from_attributes
from pipeline.describe.imported import UnmatchedClasses, describe_from_cbd, describe_from_file
from pipeline.describe.llm import (API_KEY_VARIABLE, LLMError, LLMSettings, ask_all,
                                   descriptions_table, estimate, plan_requests)
from pipeline.describe.prompts import PromptTemplate, load_prompt
from pipeline.describe.table import DESCRIPTION_COLUMNS

__all__ = ["API_KEY_VARIABLE", "AnswerCache", "DESCRIPTION_COLUMNS", "LLMError",
           "LLMSettings", "PromptTemplate", "UnmatchedClasses", "ask_all", "describe_from_attributes",
           "describe_from_cbd", "describe_from_file", "descriptions_table", "estimate",
           "load_prompt", "plan_requests"]
