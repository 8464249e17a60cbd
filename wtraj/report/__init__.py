"""The visual report of ``wtraj analyze``: embedding, figures, HTML page and atomic output.

- :mod:`wtraj.report.embedding`: classical MDS of a distance matrix (no N×D data needed);
- :mod:`wtraj.report.plots`: the figures, from arrays, with matplotlib's Agg backend;
- :mod:`wtraj.report.html`: one self-contained ``report.html`` with the figures embedded;
- :mod:`wtraj.report.writer`: an output folder built aside and renamed into place when complete;
- :mod:`wtraj.report.tables`, :mod:`wtraj.report.figures`: the tables and figures of an analysis;
- :mod:`wtraj.report.summary`: the runs table and the compact HTML summary shown in Jupyter;
- :mod:`wtraj.report.output_target`: where it may go: never an input, and replacing only a
  report wtraj wrote (its marker file), checked before the analysis;
- :mod:`wtraj.report.work_folder`: the locked hidden folder it is built in, and the sweep of
  those left by runs that died;
- :mod:`wtraj.report.signals`: SIGTERM and SIGHUP turned into an exception, so that cleanup runs;
- :mod:`wtraj.report.build`: everything written as files, figures and the page.
- :mod:`wtraj.report.figure_pool`: worker processes that draw the figures for ``wtraj analyze``.

The analysis itself is :mod:`wtraj.pipeline`; its result is :class:`wtraj.result.Analysis`.
"""
