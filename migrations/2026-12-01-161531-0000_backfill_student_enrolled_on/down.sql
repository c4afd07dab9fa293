-- Nothing to undo: the dates stay, and reverting the expand step drops the column.
SELECT 1;
