"""Figures of the diagnosis quantities (:mod:`nbn_tutorial.diagnosis`) and of training metrics.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot's global state, so
it works under any backend (Agg included), is never shown implicitly and needs no closing. In a
notebook, leave the figure as a cell's last expression (or ``display(fig)``); save it with
``fig.savefig(path)``.

One theme (:data:`THEME`) styles every figure, applied through ``matplotlib.rc_context`` so importing
this package changes nothing globally; :func:`set_theme` applies it globally for your own plots.
Shot groups always have the same colours (:data:`GROUP_COLORS`).

Functions that draw per-class or per-channel tables also accept a mapping ``{"BN": table, "NBN":
table}`` and then compare the runs side by side.

Modules: ``theme`` (theme, colours, figure helpers), ``panels`` (shared panels), ``accuracy``,
``features`` (feature strength, channels, t-SNE), ``parameters`` (BN/NBN parameters, classifier norms),
``images`` (Grad-CAM, class samples), ``training`` (curves, α), ``longtail`` (long-tailed profiles),
``dynamics`` (NBN's parameters over training, its first step), ``alpha`` (a study's α against the feature
bias and over training), ``components`` (Compound BN's
component usage by class group), ``study`` (paired differences of a study), ``rebalancing`` (cRT, τ-norm,
LWS and RIDE side by side; accuracy against τ).
"""
from nbn_tutorial.plots.alpha import plot_alpha_collapse, plot_alpha_relation
from nbn_tutorial.plots.accuracy import plot_accuracy_vs_count, plot_confusion, plot_group_comparison
from nbn_tutorial.plots.components import plot_component_usage
from nbn_tutorial.plots.dynamics import plot_first_step, plot_nbn_dynamics
from nbn_tutorial.plots.features import plot_channel_strength, plot_feature_strength, plot_tsne
from nbn_tutorial.plots.images import plot_class_samples, plot_grad_cam
from nbn_tutorial.plots.longtail import plot_longtail_profiles
from nbn_tutorial.plots.parameters import plot_bn_parameters, plot_classifier_norms, plot_gamma_vs_frequency
from nbn_tutorial.plots.rebalancing import plot_rebalancing, plot_tau_curves
from nbn_tutorial.plots.study import plot_paired_differences, plot_per_class_differences
from nbn_tutorial.plots.theme import GROUP_COLORS, THEME, Tables, set_theme, theme_rc
from nbn_tutorial.plots.training import plot_alpha_over_training, plot_training_curves

__all__ = [
    "THEME", "GROUP_COLORS", "Tables", "theme_rc", "set_theme",
    "plot_accuracy_vs_count", "plot_confusion", "plot_group_comparison",
    "plot_component_usage", "plot_alpha_relation", "plot_alpha_collapse",
    "plot_feature_strength", "plot_channel_strength", "plot_tsne",
    "plot_bn_parameters", "plot_gamma_vs_frequency", "plot_classifier_norms",
    "plot_grad_cam", "plot_class_samples",
    "plot_alpha_over_training", "plot_training_curves",
    "plot_longtail_profiles",
    "plot_nbn_dynamics", "plot_first_step",
    "plot_paired_differences", "plot_per_class_differences",
    "plot_rebalancing", "plot_tau_curves",
]
