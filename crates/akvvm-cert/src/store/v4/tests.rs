//! Tests of the 4.x layout: added with the next commit.
