#pragma once

#include <cstddef>
#include <iosfwd>

#include "agent/cli/scorecard_figures.h"

namespace wattprobe {

/// Markdown for a wiki: every figure, a lower bound marked "≥" with its reason beside it.
void render_scorecard_markdown(const Scorecard& card, std::size_t top, std::ostream& out);

/// One self-contained HTML file: inline CSS and SVG charts (grams per group before and after,
/// the waterfall of the total's change), no script, nothing fetched.
void render_scorecard_html(const Scorecard& card, std::size_t top, std::ostream& out);

/// Every figure, unrounded, and the PromQL behind each (queries[], by figure name).
void render_scorecard_json(const Scorecard& card, std::size_t top, std::ostream& out);

}  // namespace wattprobe
