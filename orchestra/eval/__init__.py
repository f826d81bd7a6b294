"""Evaluation: the ComplexFuncBench protocol (golden-path replay; success, call and turn accuracy).

    summary, samples = evaluate(policy, tasks, tools, eval_config(cfg.eval), exact_match=..., out_dir=...)
    summary, samples = evaluate_ecosystem(policy, load_booking(root), config)
"""

from orchestra.eval.judge import Judge, JudgeConfig, OpenAIJudge, judge_config
from orchestra.eval.metrics import DomainRule, leading_completed_steps, summarize
from orchestra.eval.policy import OraclePolicy, Policy, ReplayPolicy, StopAfterFirstStepPolicy
from orchestra.eval.protocol import (EvalConfig, FreeCallRule, eval_config, evaluate, evaluate_ecosystem,
                                     gold_steps, rule_equal)
from orchestra.eval.report import summary_table, write_results

__all__ = [
    "DomainRule", "EvalConfig", "FreeCallRule", "Judge", "JudgeConfig", "OpenAIJudge", "OraclePolicy", "Policy",
    "ReplayPolicy", "StopAfterFirstStepPolicy", "eval_config", "evaluate", "evaluate_ecosystem", "gold_steps",
    "judge_config", "leading_completed_steps", "rule_equal", "summarize", "summary_table", "write_results",
]
