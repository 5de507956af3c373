"""Loss landscapes: directions, plane evaluators, grids, lines, projections, curvature."""
